package controller

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A legacy single-node data dir's topics are imported once, keeping their
// ids and configs; a second Bootstrap changes nothing.
func TestBootstrapLegacyTopics(t *testing.T) {
	dir := t.TempDir()
	doc := `{"version":1,"topics":[{"name":"orders","id":"bWwOhhJE8xk-l-HsiSbmPA","partitions":3,"configs":{"cleanup.policy":"compact"}},{"name":"__consumer_offsets","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":2}]}`
	if err := os.WriteFile(filepath.Join(dir, LegacyTopicsFile), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := ReadLegacyTopics(dir, 1)
	if err != nil || len(specs) != 2 {
		t.Fatalf("%v %+v", err, specs)
	}
	cl := newCluster(t, 1, nil)
	n := cl.nodes[1]
	select {
	case <-n.ctl.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if err := n.ctl.Bootstrap(ctx(t), specs); err != nil {
		t.Fatal(err)
	}
	img := n.pub.Load()
	o := img.Topic("orders")
	if o == nil || o.ID.String() != "bWwOhhJE8xk-l-HsiSbmPA" || len(o.Partitions) != 3 || o.Configs["cleanup.policy"] != "compact" || o.Partitions[2].Leader != 1 {
		t.Fatalf("orders: %+v", o)
	}
	if co := img.Topic("__consumer_offsets"); co == nil || !co.Internal || len(co.Partitions) != 2 {
		t.Fatalf("__consumer_offsets: %+v", co)
	}
	if errs := n.ctl.DeleteTopics(ctx(t), []string{"orders"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := n.ctl.Bootstrap(ctx(t), specs); err != nil {
		t.Fatal(err)
	}
	if n.pub.Load().Topic("orders") != nil {
		t.Fatal("second Bootstrap imported again")
	}
	if specs, err := ReadLegacyTopics(t.TempDir(), 1); err != nil || specs != nil {
		t.Fatalf("no file: %v %v", specs, err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, LegacyTopicsFile), []byte("{"), 0o644)
	if _, err := ReadLegacyTopics(bad, 1); err == nil {
		t.Fatal("corrupt file accepted")
	}
}
