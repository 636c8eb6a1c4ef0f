import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { ApiClient } from "./lib/api";
import "./styles.css";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App api={new ApiClient()} />
  </StrictMode>,
);
