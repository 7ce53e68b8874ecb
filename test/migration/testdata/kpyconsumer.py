#!/usr/bin/python3
"""kafka-python (Debian's python3-kafka 2.0.2) group consumer for the
migration acceptance test (../acceptance_test.go).

Run it with /usr/bin/python3.

  kpyconsumer.py BOOTSTRAP TOPIC GROUP
      joins consumer group GROUP from the earliest offset (the group has no
      commit), auto-commits every second, and consumes until its stdin is
      closed; then commits synchronously, leaves the group and exits.

Stdout, one line per event, tab-separated:
  rec   PARTITION OFFSET VALUE        a consumed record, in consumption order
  oor   MESSAGE                       kafka-python saw OFFSET_OUT_OF_RANGE
  reset PARTITION MESSAGE             a partition's offset was reset again
                                      after its first (initial) reset
  done  RECORDS                       after the final commit
"""

import logging
import sys
import threading

from kafka import KafkaConsumer

out_lock = threading.Lock()


def emit(*fields):
    line = "\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


class Watch(logging.Handler):
    """Reports the log lines that mean a client lost its position:
    kafka-python's fetcher logs "Fetch offset ... is out of range" before
    resetting, and "Resetting offset for partition P to earliest offset."
    (debug) on every reset to the reset policy (the first per partition is
    the expected one: the group has no commit)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.resets = {}

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            return
        if "out of range" in msg.lower():
            emit("oor", msg)
        if msg.startswith("Resetting offset for partition") and msg.endswith(" offset."):
            key = msg.split(" to ")[0]
            self.resets[key] = self.resets.get(key, 0) + 1
            if self.resets[key] > 1:
                emit("reset", key, msg)


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bootstrap, topic, group = argv[1], argv[2], argv[3]
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    watch = Watch()
    kl = logging.getLogger("kafka")
    kl.addHandler(watch)
    # The fetcher logs at debug for the watch only: stderr gets warnings.
    kl.propagate = False
    errh = logging.StreamHandler(sys.stderr)
    errh.setLevel(logging.WARNING)
    errh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    kl.addHandler(errh)
    kl.setLevel(logging.INFO)
    logging.getLogger("kafka.consumer.fetcher").setLevel(logging.DEBUG)

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        client_id="migration-kafka-python",
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=1000,
        max_poll_records=2000,
    )
    n = 0
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=200)
        lines = []
        for tp, msgs in batches.items():
            for m in msgs:
                value = m.value.decode() if m.value is not None else ""
                lines.append("rec\t%d\t%d\t%s\n" % (m.partition, m.offset, value))
        if lines:
            n += len(lines)
            with out_lock:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
    consumer.commit()
    consumer.close(autocommit=False)
    emit("done", n)


if __name__ == "__main__":
    main(sys.argv)
