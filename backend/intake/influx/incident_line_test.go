package influx

import (
	"testing"
	"time"
)

func TestIncidentLine(t *testing.T) {
	ts := time.Unix(0, 1795512615250000000)
	got := string(IncidentLine(nil, Incident{ID: 7, Org: "shop", Site: "mall 1", Department: "retail", Channel: "web_form",
		Type: "poor_service", State: "closed", Reason: "supplier", Closed: true, PassMin: -1, CloseMin: 95.5,
		WithinSet: true, WithinDeadline: true, Errors: map[string]int{"remark": 1}, Time: ts}))
	want := `incident,channel=web_form,department=retail,org=shop,reason=supplier,site=mall\ 1,state=closed,type=poor_service ` +
		`id=7i,open=0i,closed=1i,thanks=0i,late=0i,err_documents=0i,err_comment=0i,err_remark=1i,err_name=0i,err_resolution=0i,errors=1i,close_min=95.5,within_deadline=1i 1795512615250000000`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	m := parseOne(t, []byte(got))
	if m.Name() != MeasurementIncident {
		t.Fatalf("measurement %q", m.Name())
	}
}

// FuzzIncidentLine checks that any tag values give one parseable point.
func FuzzIncidentLine(f *testing.F) {
	f.Add("shop", "site 1", "retail", "poor_service", "closed")
	f.Add(`a\`, "x,y=z", "new\nline", `q"`, " ")
	f.Fuzz(func(t *testing.T, org, site, dept, typ, state string) {
		line := IncidentLine(nil, Incident{Org: org, Site: site, Department: dept, Type: typ, State: state,
			PassMin: 3, CloseMin: -1, Time: time.Unix(1, 0)})
		parseOne(t, line)
	})
}
