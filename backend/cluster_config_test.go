package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterConfig: the cluster section loads, and one without the MQTT
// URLs or the username is refused at load time, not at the first publish.
func TestClusterConfig(t *testing.T) {
	load := func(cluster string) (Config, error) {
		dir := t.TempDir()
		p := filepath.Join(dir, "semko.yaml")
		body := "data_dir: " + dir + "\nfleet_file: f.yaml\ninflux:\n  url: http://127.0.0.1:1\n  bucket: b\nmqtt:\n  cluster:\n" + cluster
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(p)
	}
	cfg, err := load("    nats_urls: [nats://127.0.0.1:4222, nats://127.0.0.1:4223]\n" +
		"    mqtt_urls: [tcp://127.0.0.1:1883]\n    username: semko-backend\n    ack_wait: 5s\n    durable: semko-a\n")
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.MQTT.Cluster
	if !cc.enabled() || len(cc.NATSURLs) != 2 || cc.AckWait != 5*time.Second || cc.Durable != "semko-a" {
		t.Errorf("loaded %+v", cc)
	}
	if _, err := load("    nats_urls: [nats://127.0.0.1:4222]\n"); err == nil || !strings.Contains(err.Error(), "cluster.mqtt_urls") {
		t.Errorf("incomplete cluster section: %v", err)
	}
	if _, err := load("    nats_url: nats://x\n"); err == nil {
		t.Error("misspelt key accepted")
	}
	if DefaultConfig().MQTT.Cluster.enabled() {
		t.Error("the default config uses the cluster")
	}
}
