"""Consumer-group clients (kafka-python, confluent-kafka) for kobs interop tests.

usage: group_clients.py kafka-python BOOTSTRAP TOPIC GROUP EXPECTED
       group_clients.py confluent BOOTSTRAP TOPIC GROUP EXPECTED
       group_clients.py confluent-produce BOOTSTRAP TOPIC PREFIX COUNT IDEMPOTENT
The consumers subscribe with GROUP (group management, no manual assignment),
start from the earliest offset when the group has no commit, print one value
per line until EXPECTED values arrived (or 60 s passed), committing
synchronously after every batch, then close (leaving the group). A second run
with the same GROUP must resume from the committed offsets.
"""
import sys
import time


def kafka_python(bootstrap, topic, group, expected):
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=1000)
    got = 0
    deadline = time.time() + 60
    while got < expected and time.time() < deadline:
        batches = c.poll(timeout_ms=500)
        for msgs in batches.values():
            for msg in msgs:
                print(msg.value.decode(), flush=True)
                got += 1
        if batches:
            c.commit()
    c.close()
    if got < expected:
        sys.exit(f"kafka-python read {got} of {expected} records")


def confluent(bootstrap, topic, group, expected):
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    c.subscribe([topic])
    got = 0
    deadline = time.time() + 60
    while got < expected and time.time() < deadline:
        msgs = c.consume(num_messages=500, timeout=0.5)
        n = 0
        for msg in msgs:
            if msg.error():
                # Partition EOF and transient errors are informational here.
                continue
            print(msg.value().decode(), flush=True)
            n += 1
        if n:
            got += n
            c.commit(asynchronous=False)
    c.close()
    if got < expected:
        sys.exit(f"confluent-kafka read {got} of {expected} records")


def confluent_produce(bootstrap, topic, prefix, count, idempotent):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": idempotent})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(count):
        v = f"{prefix}-{i}".encode()
        p.produce(topic, key=v, value=v, on_delivery=done)
        p.poll(0)
    left = p.flush(30)
    if left or errors:
        sys.exit(f"confluent-kafka produce: {left} undelivered, errors {errors[:3]}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "kafka-python":
        kafka_python(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "confluent":
        confluent(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "confluent-produce":
        confluent_produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6] == "true")
    else:
        sys.exit("unknown command " + cmd)
