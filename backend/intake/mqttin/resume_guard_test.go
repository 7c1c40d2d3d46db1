package mqttin_test

import (
	"testing"
	"time"

	"github.com/semko/semko/backend/intake/mqttin"
	"github.com/semko/semko/internal/testwait"
)

// TestResumeGuard drives forced reconnects of the consumer while a device
// publishes, against the real broker with its synced pebble store. mochi
// v2.7.9 loses messages routed to a session while it is being taken over;
// without the broker's resume hook 9 to 14 of 40 were lost in every run.
func TestResumeGuard(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", t.TempDir()) // pebble with Sync, as in production
	addr := b.Addr()

	in := newIntake(func(_ string, delivery int) error {
		if delivery == 1 {
			return errBusy // every message once unacknowledged: many resumes
		}
		return nil
	})
	c, _ := startConsumer(t, mqttin.Options{URL: "tcp://" + addr, Intake: in,
		MaxTransientFailures: 4, RedeliverAfter: 100 * time.Millisecond, Workers: 2, QueueSize: 4})
	publishN(t, deviceClient(t, addr), 40, "v")
	testwait.For(t, "every message accepted", func() bool { n, _ := in.counts(); return n == 40 })
	if s := c.Stats(); s.ForcedReconnects == 0 {
		t.Errorf("no session resumed: %+v", s)
	}
}
