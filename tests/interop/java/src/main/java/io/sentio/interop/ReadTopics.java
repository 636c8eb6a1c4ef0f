package io.sentio.interop;

import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import org.apache.avro.generic.GenericData;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads Sentio topics the way a JVM integrator would and prints one JSON line per record:
 * {"topic": ..., "partition": ..., "offset": ..., "key": ..., "value": {the Avro record}}.
 *
 * <p>Usage: ReadTopics BOOTSTRAP REGISTRY_URL GROUP_ID COUNT TIMEOUT_S TOPIC...
 * Stops after COUNT records, or after TIMEOUT_S seconds (exit 2: fewer records than asked for).
 * REGISTRY_URL is Apicurio's native API, e.g. http://127.0.0.1:8081/apis/registry/v3.
 */
public final class ReadTopics {
  private ReadTopics() {}

  public static void main(String[] args) {
    if (args.length < 6) {
      System.err.println("usage: ReadTopics BOOTSTRAP REGISTRY_URL GROUP_ID COUNT TIMEOUT_S TOPIC...");
      System.exit(64);
    }
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("group.id", args[2]);
    props.put("auto.offset.reset", "earliest");
    props.put("enable.auto.commit", "false");
    // The stream workers write in transactions: never show records of an aborted one.
    props.put("isolation.level", "read_committed");
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", "io.apicurio.registry.serde.avro.AvroKafkaDeserializer");
    props.put("apicurio.registry.url", args[1]);
    // The 4-byte id after the magic byte is what the ccompat API calls the schema id: Apicurio's
    // contentId (its default in 3.x; stated here so that a changed default cannot break us).
    props.put("apicurio.registry.use-id", "contentId");
    int wanted = Integer.parseInt(args[3]);
    Instant deadline = Instant.now().plusSeconds(Long.parseLong(args[4]));
    List<String> topics = Arrays.asList(args).subList(5, args.length);
    int seen = 0;
    try (KafkaConsumer<String, Object> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(topics);
      while (seen < wanted && Instant.now().isBefore(deadline)) {
        ConsumerRecords<String, Object> records = consumer.poll(Duration.ofMillis(500));
        for (ConsumerRecord<String, Object> record : records) {
          System.out.println(json(record));
          seen++;
        }
      }
    }
    System.out.flush();
    if (seen < wanted) {
      System.err.printf("read %d of %d records before the timeout%n", seen, wanted);
      System.exit(2);
    }
  }

  private static String json(ConsumerRecord<String, Object> record) {
    GenericData data = GenericData.get();
    return "{\"topic\": " + quote(record.topic())
        + ", \"partition\": " + record.partition()
        + ", \"offset\": " + record.offset()
        + ", \"key\": " + (record.key() == null ? "null" : quote(record.key()))
        + ", \"value\": " + data.toString(record.value())
        + "}";
  }

  private static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }
}
