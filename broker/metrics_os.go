package broker

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kobs-dev/kobs/broker/telemetry"
)

// registerOSMetrics registers the broker beans read from the operating
// system and the log dirs, under Kafka's names:
//
//   - kafka.server:type=KafkaServer,name=linux-disk-read-bytes and
//     linux-disk-write-bytes: read_bytes and write_bytes of /proc/self/io,
//     the bytes this process caused to be fetched from and sent to storage,
//     as Kafka's LinuxIoMetricsCollector reports them. Registered only where
//     /proc/self/io can be read (Linux), as in Kafka.
//   - kafka.log:type=LogManager,name=OfflineLogDirectoryCount and, per
//     directory, LogDirectoryOffline,logDirectory=D: a log dir counts as
//     offline when it cannot be read now (missing, unmounted, permission
//     lost: its meta.properties cannot be opened), and the first log dir,
//     which holds the metadata log (kobs-metadata), also while that log
//     cannot be written (full disk, I/O error: Kafka takes a dir offline
//     after a write error inside it; kobs brings it back once a write
//     succeeds). Write errors in partition logs are answered
//     KAFKA_STORAGE_ERROR but do not yet mark the dir.
func (b *Broker) registerOSMetrics() {
	if !b.cfg.TelemetryEnable {
		return
	}
	if _, _, err := readProcIO(); err == nil {
		b.reg.Gauge(telemetry.Name("kafka.server", "KafkaServer", "linux-disk-read-bytes"), func() int64 {
			r, _, _ := readProcIO()
			return r
		})
		b.reg.Gauge(telemetry.Name("kafka.server", "KafkaServer", "linux-disk-write-bytes"), func() int64 {
			_, w, _ := readProcIO()
			return w
		})
	} else {
		b.log.Info("linux-disk-read-bytes and linux-disk-write-bytes not registered: /proc/self/io is unreadable", "err", err)
	}
	offline := func(dir string) bool {
		return !logDirOnline(dir) || dir == b.cfg.LogDirs[0] && b.ctl != nil && b.ctl.MetadataLogFailure() != nil
	}
	for _, dir := range b.cfg.LogDirs {
		b.reg.Gauge(telemetry.Name("kafka.log", "LogManager", "LogDirectoryOffline", "logDirectory", dir), func() int64 {
			if offline(dir) {
				return 1
			}
			return 0
		})
	}
	b.reg.Gauge(telemetry.Name("kafka.log", "LogManager", "OfflineLogDirectoryCount"), func() int64 {
		var n int64
		for _, dir := range b.cfg.LogDirs {
			if offline(dir) {
				n++
			}
		}
		return n
	})
}

// readProcIO returns read_bytes and write_bytes of /proc/self/io.
func readProcIO() (read, write int64, err error) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(": "))
		if !ok {
			continue
		}
		n, perr := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if perr != nil {
			continue
		}
		switch string(k) {
		case "read_bytes":
			read, found = n, found+1
		case "write_bytes":
			write, found = n, found+1
		}
	}
	if found != 2 {
		return 0, 0, os.ErrInvalid
	}
	return read, write, nil
}

// logDirOnline reports whether the broker can read dir's meta.properties
// (written at startup in every log dir).
func logDirOnline(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "meta.properties"))
	if err != nil {
		return false
	}
	f.Close()
	return true
}
