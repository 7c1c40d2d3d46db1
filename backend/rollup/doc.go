// Package rollup computes the figures that need the whole population and so
// cannot be one InfluxQL query on a dashboard: the fair ranking (each
// organisation's, site's, counter's and operator's satisfied share shrunk
// toward the overall share, so that three happy votes do not top the list),
// participation per entity and NPS. It reads raw points with InfluxQL and
// writes the results back as points of the `rollup` measurement.
//
// # The rollup measurement
//
// One point per entity and run, timestamped with the run's time; dashboards
// read the newest one with last(). It is a public contract, like vote.
//
// Tags:
//
//	level     all | org | site | counter | operator | hour_of_week
//	org       organisation (absent for level=all)
//	site      site         (levels site and counter)
//	counter   counter      (level counter)
//	operator  operator     (level operator; an operator is ranked within the
//	          whole population but identified by org+operator, since one
//	          person may serve at several sites of an organisation)
//	window    the look-back period, e.g. "30d"
//	weekday   level hour_of_week: "1-Mon" .. "7-Sun" (Options.Location)
//	hour      level hour_of_week: "00" .. "23"
//
// Fields (each present only when it is defined):
//
//	votes            valid keypad (csat5) votes in the window, int
//	satisfied        of them satisfied (4-5), int
//	satisfied_share  satisfied / votes, 0..1
//	shrunk_share     (satisfied + m*prior) / (votes + m), 0..1, where prior is
//	                 the level=all satisfied_share and m Options.PriorWeight
//	rank             1 = best shrunk_share within the level, int
//	ranked           how many entities the level ranks, int
//	activations      activations in the window, int
//	participation    voted activations / activations, 0..1
//	nps_votes        valid NPS (nps11) votes, int
//	nps              %promoters - %detractors, -100..100
//
// Level hour_of_week carries only votes, satisfied and satisfied_share, one
// point per weekday and hour with votes, per org and (without org tag) for
// all organisations together: InfluxQL cannot group by hour of day.
//
// Votes are told apart by the vote tag `scale`: a vote whose scale is
// "nps11" is an NPS answer, any other (or none) a keypad rating.
package rollup
