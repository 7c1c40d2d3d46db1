package points

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/backend/alert"
)

type lines []string

func (l *lines) Append(_ context.Context, recs ...[]byte) error {
	for _, r := range recs {
		*l = append(*l, string(r))
	}
	return nil
}

func TestRecorder(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var got lines
	r := New(&got, clockwork.NewFakeClockAt(at), nil)
	ctx := t.Context()
	subject := alert.Subject{Org: "acme", Site: "sofia-1", Device: "kp-0001"}
	if err := r.Raise(ctx, alert.Finding{Kind: alert.KindOffline, Severity: alert.SeverityWarning, Subject: subject,
		Message: "offline", Time: at.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// A resolution has no time of its own: it takes the recorder's clock,
	// not the machine's.
	if err := r.Resolve(ctx, alert.KindOffline, subject, "back"); err != nil {
		t.Fatal(err)
	}
	ack := alert.Event{Action: alert.ActionAcknowledged, Actor: "ivan", Comment: "on it", Time: at.Add(time.Minute)}
	if err := r.Record(ctx, alert.Alert{Kind: alert.KindOffline, State: alert.StateAcknowledged, Subject: subject}, ack); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d points, want 3: %q", len(got), got)
	}
	wantEnd := []string{
		" " + strconv.FormatInt(at.Add(-time.Minute).UnixNano(), 10),
		" " + strconv.FormatInt(at.UnixNano(), 10),
		" " + strconv.FormatInt(at.Add(time.Minute).UnixNano(), 10),
	}
	for i, l := range got {
		if !strings.HasPrefix(l, "alert,") || !strings.HasSuffix(l, wantEnd[i]) {
			t.Errorf("point %d: %q, want an alert point ending %q", i, l, wantEnd[i])
		}
	}
	if !strings.Contains(got[1], `state="resolved"`) || !strings.Contains(got[2], `acknowledged by ivan: on it`) {
		t.Errorf("points %q", got)
	}
}
