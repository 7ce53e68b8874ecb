#!/usr/bin/python3
"""librdkafka client (Debian's python3-confluent-kafka) for Switchyard's
client-version matrix (matrix_test.go).

Run it with /usr/bin/python3, from a directory without a kafka/ folder:
Debian's python3-confluent-kafka is installed for that interpreter only.

  rdkclient.py produce BOOTSTRAP TOPIC FROM TO
      writes records FROM..TO-1 in order, key "key-<i%97>", value "%08d" % i
      (the formulas of recordKey/recordValue in helpers_test.go) with an
      idempotent acks=all producer, then flushes.
  rdkclient.py consume BOOTSTRAP TOPIC GROUP N TIMEOUT_S
      consumes in consumer group GROUP (from the earliest offset when the
      group has no commit) until N records were seen, commits the positions
      synchronously, closes (leaving the group) and prints one
      "partition<TAB>offset<TAB>key<TAB>value" line per record.

Both print "confluent-kafka <version> librdkafka <version>" to stderr first.
Exit status is 0 on success, non-zero (with a message on stderr) on error
or when TIMEOUT_S passes first.
"""

import sys
import time

import confluent_kafka
from confluent_kafka import Consumer, KafkaException, Producer


def produce(bootstrap, topic, first, last):
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "rdkclient-producer",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    for i in range(first, last):
        while True:
            try:
                producer.produce(topic, key=("key-%d" % (i % 97)).encode(),
                                 value=("%08d" % i).encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: serve callbacks, retry
    left = producer.flush(60)
    if left:
        raise SystemExit("%d records not delivered within 60s" % left)
    if errors:
        raise SystemExit("%d records failed, first: %s" % (len(errors), errors[0]))
    print("produced %d" % (last - first), file=sys.stderr)


def consume(bootstrap, topic, group, n, timeout_s):
    deadline = time.monotonic() + timeout_s
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "rdkclient-consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 200,
    })
    consumer.subscribe([topic])
    lines = []
    while len(lines) < n:
        if time.monotonic() > deadline:
            consumer.close()
            raise SystemExit("timed out after %ss with %d of %d records" % (timeout_s, len(lines), n))
        for m in consumer.consume(500, 0.5):
            if m.error():
                print("consume: %s" % m.error(), file=sys.stderr)
                continue
            key = m.key().decode() if m.key() is not None else ""
            value = m.value().decode() if m.value() is not None else ""
            lines.append("%d\t%d\t%s\t%s\n" % (m.partition(), m.offset(), key, value))
    # Commit the consumed positions synchronously, then leave the group.
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as e:
        consumer.close()
        raise SystemExit("commit: %s" % e)
    consumer.close()
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def main(argv):
    print("confluent-kafka %s librdkafka %s" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]),
          file=sys.stderr, flush=True)
    if len(argv) == 6 and argv[1] == "produce":
        produce(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif len(argv) == 7 and argv[1] == "consume":
        consume(argv[2], argv[3], argv[4], int(argv[5]), float(argv[6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
