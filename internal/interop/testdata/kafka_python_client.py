"""kafka-python (Debian python3-kafka) client for kobs interop tests.

usage: kafka_python_client.py produce BOOTSTRAP TOPIC PREFIX COUNT
       kafka_python_client.py consume BOOTSTRAP TOPIC PARTITIONS EXPECTED
produce sends PREFIX-0..COUNT-1 and waits for every acknowledgement;
consume assigns all partitions manually, reads from the beginning and prints
one value per line until EXPECTED values arrived (or 30 s passed).
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(bootstrap, topic, prefix, count):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [p.send(topic, key=prefix.encode(), value=f"{prefix}-{i}".encode()) for i in range(count)]
    for f in futures:
        f.get(timeout=30)
    p.flush()
    p.close()


def consume(bootstrap, topic, partitions, expected):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=1000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = 0
    deadline = time.time() + 30
    while got < expected and time.time() < deadline:
        for msg in c:
            print(msg.value.decode(), flush=True)
            got += 1
            if got >= expected:
                break
    c.close()
    if got < expected:
        sys.exit(f"kafka-python read {got} of {expected} records")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("unknown command " + cmd)
