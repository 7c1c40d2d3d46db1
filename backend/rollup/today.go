package rollup

import (
	"context"
	"fmt"
	"time"

	"github.com/semko/semko/internal/influxdb"
)

// Place is an organisation and site, the key of Since's answer.
type Place struct{ Org, Site string }

// Tally is the keypad votes and activations of a place over a period.
type Tally struct {
	Votes, Satisfied   int64
	Activations, Voted int64
}

// Add adds o to t.
func (t *Tally) Add(o Tally) {
	t.Votes += o.Votes
	t.Satisfied += o.Satisfied
	t.Activations += o.Activations
	t.Voted += o.Voted
}

// SatisfiedShare is satisfied / votes, and false without votes.
func (t Tally) SatisfiedShare() (float64, bool) {
	if t.Votes == 0 {
		return 0, false
	}
	return float64(t.Satisfied) / float64(t.Votes), true
}

// Participation is voted activations / activations, and false without
// activations.
func (t Tally) Participation() (float64, bool) {
	if t.Activations == 0 {
		return 0, false
	}
	return float64(t.Voted) / float64(t.Activations), true
}

// Since reads every site's valid keypad votes and activations from from
// until now, with the same definitions as the rollup job (csat votes only;
// participation is voted activations over activations). The console's
// manager home shows today's figures of its scope with it.
func Since(ctx context.Context, db *influxdb.Client, from time.Time) (map[Place]Tally, error) {
	span := fmt.Sprintf(`time >= '%s'`, from.UTC().Format(time.RFC3339Nano))
	out := map[Place]Tally{}
	reads := []struct {
		stmt string
		add  func(*Tally, influxdb.Series)
	}{
		{`SELECT count("score") AS "n", sum("satisfied") AS "sat" FROM "vote"` +
			` WHERE ("valid"::tag = 'true' OR "valid"::field = 'true') AND "scale" != 'nps11' AND ` + span + ` GROUP BY "org", "site"`,
			func(t *Tally, s influxdb.Series) {
				t.Votes += int64(num(s, "n"))
				t.Satisfied += int64(num(s, "sat"))
			}},
		{`SELECT count("voted") AS "n", sum("voted") AS "voted" FROM "activation" WHERE ` + span + ` GROUP BY "org", "site"`,
			func(t *Tally, s influxdb.Series) {
				t.Activations += int64(num(s, "n"))
				t.Voted += int64(num(s, "voted"))
			}},
	}
	for _, r := range reads {
		res, err := db.Query(ctx, r.stmt)
		if err != nil {
			return nil, fmt.Errorf("today's figures: %w", err)
		}
		for _, s := range res {
			p := Place{Org: s.Tags["org"], Site: s.Tags["site"]}
			t := out[p]
			r.add(&t, s)
			out[p] = t
		}
	}
	return out, nil
}
