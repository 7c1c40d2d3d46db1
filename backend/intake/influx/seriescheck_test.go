package influx

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/semko/semko/internal/influxlocal"
)

func writeSeries(t *testing.T, srv *influxlocal.Server, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "m,k=%d v=1i %d\n", i, time.Now().UnixNano())
	}
	resp, err := http.Post(srv.URL()+"/write?db="+srv.Database(), "text/plain", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s", resp.Status)
	}
}

// TestSeriesCheck reads the exact count from a real InfluxDB (both index
// types), warns from 80% of the limit and says when the limit is reached
// at the growth it saw.
func TestSeriesCheck(t *testing.T) {
	for _, index := range []string{"tsi1", "inmem"} {
		t.Run(index, func(t *testing.T) {
			srv := influxlocal.StartForTestWith(t, influxlocal.Options{IndexVersion: index, MaxSeriesPerDatabase: 100})
			clock := clockwork.NewFakeClock()
			var got []SeriesState
			c, err := NewSeriesCheck(SeriesCheckOptions{URL: srv.URL(), Database: srv.Database() + "/autogen", Limit: 100,
				Clock: clock, Report: func(_ context.Context, s SeriesState) { got = append(got, s) }})
			if err != nil {
				t.Fatal(err)
			}
			st := c.RunOnce(t.Context())
			if st.Series != 0 || st.Warn {
				t.Fatalf("empty database: %+v", st)
			}
			writeSeries(t, srv, 0, 40)
			st = c.RunOnce(t.Context())
			if st.Series != 40 || st.Warn {
				t.Fatalf("40 series: %+v", st)
			}
			clock.Advance(time.Hour)
			writeSeries(t, srv, 40, 80)
			st = c.RunOnce(t.Context())
			// 80 in an hour from 0: 1,920 a day, 20 left: 15 minutes.
			if st.Series != 80 || !st.Warn || st.PerDay != 1920 || st.Left != 15*time.Minute {
				t.Fatalf("80 series: %+v", st)
			}
			if d := st.Describe(); !strings.Contains(d, "80 series of a limit of 100 (80%)") || !strings.Contains(d, "15m0s") {
				t.Fatalf("Describe = %q", d)
			}
			if len(got) != 3 {
				t.Fatalf("%d reports, want 3", len(got))
			}
		})
	}
}

// FuzzParseDebugVars: whatever /debug/vars answers, the parser returns a
// count that is not negative or an error, and never panics.
func FuzzParseDebugVars(f *testing.F) {
	f.Add(`{"database:semko":{"name":"database","tags":{"database":"semko"},"values":{"numMeasurements":4,"numSeries":1234}}}`)
	f.Add(`{"database:other":{"name":"database","tags":{"database":"other"},"values":{"numSeries":9}},"x":1}`)
	f.Add(`{"database:semko":{"name":"database","tags":{"database":"semko"},"values":{"numSeries":-3}}}`)
	f.Add(`{"database:semko":{"name":"database","tags":{"database":"semko"},"values":{"numSeries":1e3}}}`)
	f.Add(`[]`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		n, err := parseDebugVars(strings.NewReader(body), "semko")
		if err == nil && n < 0 {
			t.Fatalf("count %d from %q", n, body)
		}
	})
}

func TestParseDebugVars(t *testing.T) {
	n, err := parseDebugVars(strings.NewReader(`{"cmdline":["influxd"],"database:semko":{"name":"database","tags":{"database":"semko"},"values":{"numMeasurements":4,"numSeries":1234}},"database:_internal":{"name":"database","tags":{"database":"_internal"},"values":{"numSeries":99}}}`), "semko")
	if err != nil || n != 1234 {
		t.Fatalf("parseDebugVars = %d, %v; want 1234", n, err)
	}
	if _, err := parseDebugVars(strings.NewReader(`{"database:semko":{"name":"database","tags":{"database":"semko"},"values":{"numSeries":-3}}}`), "semko"); err == nil {
		t.Fatal("negative count accepted")
	}
}
