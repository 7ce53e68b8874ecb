#!/usr/bin/python3
"""librdkafka exactly-once loop for Switchyard's compatibility tests
(txnloop_test.go), through python3-confluent-kafka.

Run it with /usr/bin/python3, from a directory without a kafka/ folder:
Debian's python3-confluent-kafka is installed for that interpreter only.

  eosloop.py BOOTSTRAP IN OUT GROUP TXNID WANT TIMEOUT_S
      a consume-transform-produce loop: a read_committed consumer in group
      GROUP reads IN from the earliest offset; every batch is written to
      OUT, key as read, value "out-" + value, in one transaction that also
      commits the batch's offsets (send_offsets_to_transaction). It stops
      once transactions covering WANT input records committed, and prints
      "committed N aborted M".

An abortable error aborts the transaction and rewinds the consumer to the
group's committed offsets, as the librdkafka EOS example does. Exit status
is 0 on success, non-zero (with a message on stderr) on a fatal error, on
too many aborts, or when TIMEOUT_S passes first.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rewind(consumer):
    """Seeks every assigned partition back to its committed offset."""
    assignment = consumer.assignment()
    if not assignment:
        return
    for tp in consumer.committed(assignment, timeout=30):
        if tp.offset < 0:
            # Nothing committed yet: back to the start, as
            # auto.offset.reset=earliest would.
            tp.offset = -2  # OFFSET_BEGINNING
        consumer.seek(tp)


def loop(bootstrap, src, dst, group, txnid, want, timeout):
    deadline = time.monotonic() + timeout
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "eosloop-consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 200,
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "eosloop-producer",
        "transactional.id": txnid,
    })
    producer.init_transactions(30)
    consumer.subscribe([src])
    done = aborted = 0
    while done < want:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {done} of {want} records committed, {aborted} transactions aborted")
        msgs = consumer.consume(500, 1.0)
        batch = []
        for m in msgs:
            if m.error():
                log(f"consume: {m.error()}")
                continue
            batch.append(m)
        if not batch:
            continue
        producer.begin_transaction()
        try:
            for m in batch:
                producer.produce(dst, key=m.key(), value=b"out-" + m.value())
            # position() is the next offset to read, what a commit records;
            # a partition not read yet has none and is left out.
            offsets = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        except KafkaException as e:
            err = e.args[0]
            if not err.txn_requires_abort():
                raise
            log(f"transaction aborted: {err}")
            producer.abort_transaction(30)
            rewind(consumer)
            aborted += 1
            if aborted > 20:
                raise SystemExit(f"{aborted} transactions aborted, {done} of {want} records committed")
            continue
        done += len(batch)
    consumer.close()
    producer.flush(30)
    print(f"committed {done} aborted {aborted}", flush=True)


def main(argv):
    if len(argv) != 8:
        raise SystemExit(__doc__)
    bootstrap, src, dst, group, txnid, want, timeout = argv[1:]
    loop(bootstrap, src, dst, group, txnid, int(want), float(timeout))


if __name__ == "__main__":
    main(sys.argv)
