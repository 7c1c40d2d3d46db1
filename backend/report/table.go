package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/xuri/excelize/v2"
)

// Formats a report is rendered in.
var Formats = []string{"pdf", "csv", "xlsx"}

// ContentType of each format.
var ContentType = map[string]string{
	"pdf":  "application/pdf",
	"csv":  "text/csv; charset=utf-8",
	"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// Write renders the report in format (pdf, csv or xlsx).
func (rep *Report) Write(w io.Writer, format string) error {
	switch format {
	case "pdf":
		return rep.WritePDF(w)
	case "csv":
		return rep.WriteCSV(w)
	case "xlsx":
		return rep.WriteXLSX(w)
	}
	return fmt.Errorf("%w: %q (pdf, csv or xlsx)", ErrFormat, format)
}

// table is one sheet: a name, a header and rows of cells (strings,
// int64 or float64 so that spreadsheets keep numbers as numbers).
type table struct {
	name   string
	header []string
	rows   [][]any
}

// tables lays the report out as sheets. Figures are raw counts and sums
// beside the ratios, so a spreadsheet can aggregate further correctly.
func (rep *Report) tables() []table {
	l := loc{rep.Request.Lang}
	r := rep.Request
	fig := func(f Figures) []any {
		return []any{f.Votes, f.Satisfied, f.Negative, f.ScoreSum, optRatio(f.Share()), optRatio(f.Mean()),
			f.Activations, f.Voted, optRatio(f.Participation())}
	}
	figHead := []string{l.t("votes"), l.t("satisfied"), l.t("negative"), "score_sum", l.t("satisfied") + " %",
		l.t("mean"), l.t("activations"), "voted", l.t("participation")}

	summary := table{name: l.t("sheet_summary"), header: []string{l.t("figure"), "value"}}
	add := func(k string, v any) { summary.rows = append(summary.rows, []any{k, v}) }
	add(l.t("org"), r.Org)
	add(l.t("site"), r.Site)
	add(l.t("operator"), r.Operator)
	add(l.t("service"), r.Service)
	add(l.t("period"), l.period(r.Period))
	add("start", r.Period.Start.Format(time.RFC3339))
	add("end", r.Period.End.Format(time.RFC3339))
	add(l.t("so_far"), rep.Now.Format(time.RFC3339))
	for i, h := range figHead {
		add(h, fig(rep.Totals)[i])
	}
	for i, h := range figHead {
		add(l.t("prev")+": "+h, fig(rep.Prev)[i])
	}
	for s := 1; s <= 5; s++ {
		add(fmt.Sprintf("%s %d", l.t("score"), s), rep.Scores[s])
	}
	add(l.t("notices_n"), int64(rep.Notices.Count))
	add(l.t("acked"), int64(rep.Notices.Acknowledged))
	add(l.t("ack_median")+" (s)", rep.Notices.MedianAck.Seconds())
	add(l.t("devices"), int64(rep.Health.Devices))
	add(l.t("availability"), rep.Health.Availability)
	add(l.t("findings"), int64(rep.Health.OpenFindings))
	add(l.t("reminders"), int64(rep.Health.RemindersDue))

	ranked := func(name, col string, rows []Row) table {
		t := table{name: name, header: append([]string{l.t("rank"), l.t("org"), col}, append(figHead, l.t("fair"))...)}
		for _, row := range rows {
			t.rows = append(t.rows, append(append([]any{int64(row.Rank), row.Org, row.Name}, fig(row.Figures)...), row.Shrunk))
		}
		return t
	}
	days := table{name: l.t("sheet_days"), header: append([]string{l.t("day")}, figHead...)}
	for _, d := range rep.Daily {
		days.rows = append(days.rows, append([]any{d.Day.Format(time.DateOnly)}, fig(d.Figures)...))
	}
	hours := table{name: l.t("sheet_hours"), header: []string{l.t("weekday"), l.t("hour"), l.t("votes"), l.t("satisfied")}}
	for wd, day := range rep.HourMap {
		for h, c := range day {
			hours.rows = append(hours.rows, []any{weekdays[l.lang][wd], int64(h), c.Votes, c.Satisfied})
		}
	}
	return []table{summary, ranked(l.t("sheet_sites"), l.t("site"), rep.Sites), ranked(l.t("sheet_ops"), l.t("operator"), rep.Ops), days, hours}
}

// optRatio is a ratio or an empty cell.
func optRatio(v float64, ok bool) any {
	if !ok {
		return ""
	}
	return v
}

// WriteCSV writes every sheet one after the other, each headed by a line
// with its name and separated by an empty line. Numbers use a point as
// the decimal mark whatever the language, so every spreadsheet reads
// them.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	for i, t := range rep.tables() {
		if i > 0 {
			if err := cw.Write([]string{}); err != nil {
				return fmt.Errorf("write csv: %w", err)
			}
		}
		if err := cw.Write([]string{"# " + t.name}); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
		if err := cw.Write(t.header); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
		for _, row := range t.rows {
			rec := make([]string, len(row))
			for j, c := range row {
				rec[j] = cellText(c)
			}
			if err := cw.Write(rec); err != nil {
				return fmt.Errorf("write csv: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func cellText(c any) string {
	switch v := c.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return v
	}
	return fmt.Sprint(c)
}

// WriteXLSX writes one worksheet per table, numbers as numbers.
func (rep *Report) WriteXLSX(w io.Writer) error {
	x := excelize.NewFile()
	defer x.Close()
	bold, err := x.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	if err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	for i, t := range rep.tables() {
		name := t.name
		if i == 0 {
			if err := x.SetSheetName("Sheet1", name); err != nil {
				return fmt.Errorf("write xlsx: %w", err)
			}
		} else if _, err := x.NewSheet(name); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
		sw, err := x.NewStreamWriter(name)
		if err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
		head := make([]any, len(t.header))
		for j, h := range t.header {
			head[j] = excelize.Cell{StyleID: bold, Value: h}
		}
		if err := sw.SetRow("A1", head); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
		for j, row := range t.rows {
			cell, _ := excelize.CoordinatesToCellName(1, j+2)
			if err := sw.SetRow(cell, row); err != nil {
				return fmt.Errorf("write xlsx: %w", err)
			}
		}
		if err := sw.Flush(); err != nil {
			return fmt.Errorf("write xlsx: %w", err)
		}
	}
	if _, err := x.WriteTo(w); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	return nil
}
