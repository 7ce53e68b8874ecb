#!/usr/bin/python3
"""Idempotent librdkafka producer (Debian's python3-confluent-kafka) for the
chaos verifier (verifier.go embeds this file and runs it; a copy of
test/migration/testdata/rdkproducer.py with its own client id).

Run it with /usr/bin/python3, from a directory without a kafka/ folder.

  rdkproducer.py BOOTSTRAP TOPIC RATE [NAME]
      produces records "NAME:<seq>" (NAME default rdk; seq from 0, key
      "NAME-<seq % 1000>") at
      about RATE records/s with enable.idempotence=true and acks=all until
      its stdin is closed, then flushes and exits.

Stdout, one line per event, tab-separated:
  ack   SEQ PARTITION OFFSET ACK_UNIX_NS LATENCY_US   a delivered record
                                                   (OFFSET -1: delivered, offset not reported)
  fail  SEQ ERROR                                    a record that failed
  error ERROR                                        a client-level error
  done  PRODUCED                                     after the final flush
Exit status is 0 when every record was delivered, 1 otherwise.
"""

import os
import sys
import threading
import time

import confluent_kafka
from confluent_kafka import Producer

out_lock = threading.Lock()


def emit(*fields):
    line = "\t".join(str(f) for f in fields) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic, rate = argv[1], argv[2], float(argv[3])
    name = argv[4] if len(argv) == 5 else "rdk"
    print("confluent-kafka %s librdkafka %s" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]),
          file=sys.stderr)
    failed = [0]

    def on_error(err):
        emit("error", str(err).replace("\t", " ").replace("\n", " "))

    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "chaos-rdkafka",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        # Retriable errors (a killed peer, a restarting backend) are
        # retried until this passes; a fault case must never get near it.
        "message.timeout.ms": 300000,
        "error_cb": on_error,
    }
    if os.environ.get("RDK_DEBUG"):
        conf["debug"] = os.environ["RDK_DEBUG"]
    producer = Producer(conf)

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    def delivered(seq, sent_ns):
        def cb(err, msg):
            now = time.time_ns()
            if err is not None:
                failed[0] += 1
                emit("fail", seq, str(err).replace("\t", " ").replace("\n", " "))
                return
            # librdkafka delivers some records of an idempotent producer
            # with no offset: a batch answered with a retriable error whose
            # later batch succeeded was written (the broker saw them in
            # sequence) but its offsets were never reported. -1: unknown.
            off = msg.offset()
            if off is None or off < 0:
                off = -1
            emit("ack", seq, msg.partition(), off, now, (now - sent_ns) // 1000)
        return cb

    seq = 0
    start = time.monotonic()
    while not stop.is_set():
        # Pace by the clock, not by sleeps, so a stall is made up for.
        due = int((time.monotonic() - start) * rate) + 1
        while seq < due and not stop.is_set():
            try:
                producer.produce(topic, key=("%s-%d" % (name, seq % 1000)).encode(),
                                 value=("%s:%d" % (name, seq)).encode(),
                                 on_delivery=delivered(seq, time.time_ns()))
                seq += 1
            except BufferError:
                producer.poll(0.05)  # local queue full: serve callbacks, retry
        producer.poll(0.01)
    left = producer.flush(120)
    if left:
        emit("error", "%d records not delivered within 120s of the stop" % left)
        sys.exit(1)
    emit("done", seq)
    sys.exit(1 if failed[0] else 0)


if __name__ == "__main__":
    main(sys.argv)
