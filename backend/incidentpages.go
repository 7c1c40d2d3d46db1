package backend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/semko/semko/backend/incident"
	"github.com/semko/semko/backend/survey"
	"github.com/semko/semko/backend/web/deskpages"
)

// addIncidentPages adds the console's incident desk (after newConsole):
// the list, the register form (pre-filled from a negative-vote alert or
// an NPS detractor's follow-up), the incident's page and the home section.
func (a *App) addIncidentPages() error {
	if a.desk.desk == nil || a.console.console == nil {
		return nil
	}
	o := deskpages.Options{
		Desk: a.desk.desk,
		Sites: func() []deskpages.Place {
			var out []deskpages.Place
			for _, s := range a.registry.Current().Sites() {
				out = append(out, deskpages.Place{Org: s.Org, Site: s.ID, Name: cmp.Or(s.Name, s.ID)})
			}
			return out
		},
		Location: func(site string) *time.Location {
			if s, ok := a.registry.Current().Site(site); ok {
				return s.Location
			}
			return nil
		},
		Logger: a.log.With("part", "incident-console"),
	}
	if a.alerts.manager != nil {
		o.Alerts = a.alerts.manager
	}
	if e := a.survey.engine; e != nil {
		dept := a.desk.desk.Config().DefaultDepartment()
		o.FollowUp = func(ctx context.Context, id int64) (incident.Draft, error) {
			f, err := e.FollowUp(ctx, id)
			if errors.Is(err, survey.ErrNotFound) {
				return incident.Draft{}, incident.ErrNotFound
			}
			if err != nil {
				return incident.Draft{}, fmt.Errorf("follow-up %d: %w", id, err)
			}
			return followUpDraft(f, dept), nil
		}
	}
	return deskpages.Register(a.console.console, o)
}

// followUpDraft is the incident an NPS detractor's follow-up opens: the
// answer's place, the channel nps_detractor, and a description quoting the
// score, reasons and comment. The contact is the one the customer agreed
// to be called back on.
func followUpDraft(f survey.FollowUp, dept string) incident.Draft {
	var b strings.Builder
	fmt.Fprintf(&b, "NPS %d/10", f.Score)
	if len(f.Reasons) > 0 {
		fmt.Fprintf(&b, "; reasons: %s", strings.Join(f.Reasons, ", "))
	}
	if f.Comment != "" {
		fmt.Fprintf(&b, "\ncomment: %s", f.Comment)
	}
	fmt.Fprintf(&b, "\ncounter: %s; answered %s (follow-up #%d)", f.Counter, f.Opened.UTC().Format(time.RFC3339), f.ID)
	return incident.Draft{Org: f.Org, Site: f.Site, Department: dept, Channel: incident.ChannelNPSDetractor,
		Type: incident.TypeService, CustomerContact: f.Contact, Description: b.String()}
}
