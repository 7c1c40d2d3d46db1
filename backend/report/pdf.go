package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"math"
	"strings"

	"codeberg.org/go-pdf/fpdf"
)

// DejaVu Sans carries Latin and Cyrillic; it is free (see fonts/LICENSE)
// and embedded so a report never depends on the fonts of the machine.
var (
	//go:embed fonts/DejaVuSans.ttf
	fontRegular []byte
	//go:embed fonts/DejaVuSans-Bold.ttf
	fontBold []byte
)

// Page geometry, millimetres on A4 portrait.
const (
	pageW, pageH = 210.0, 297.0
	margin       = 15.0
	contentW     = pageW - 2*margin
)

// Colours: one blue for figures, green/red for good/bad, greys for
// structure, so the pages print legibly in black and white too.
var (
	cBlue  = [3]int{31, 100, 170}
	cGreen = [3]int{46, 139, 87}
	cRed   = [3]int{200, 60, 50}
	cGrey  = [3]int{120, 120, 120}
	cLight = [3]int{235, 238, 242}
	cText  = [3]int{30, 30, 30}
)

// MaxChartRows bounds the sites a bar chart and the rows a ranking table
// show; the CSV and XLSX carry every row.
const MaxChartRows = 20

// WritePDF renders the report as PDF.
func (rep *Report) WritePDF(w io.Writer) error {
	l := loc{rep.Request.Lang}
	p := pdfw{f: fpdf.New("P", "mm", "A4", ""), l: l}
	f := p.f
	f.AddUTF8FontFromBytes("dv", "", fontRegular)
	f.AddUTF8FontFromBytes("dv", "B", fontBold)
	f.SetTitle(l.t("title")+" – "+l.period(rep.Request.Period), true)
	f.SetLang(rep.Request.Lang)
	f.SetProducer("Semko", false)
	f.SetCreationDate(rep.Generated)
	f.SetModificationDate(rep.Generated)
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(true, margin+5)
	f.AliasNbPages("{nb}")
	f.SetFooterFunc(func() {
		f.SetY(-margin)
		p.font("", 7.5, cGrey)
		f.CellFormat(contentW/2, 4, "Semko · "+l.t("generated")+" "+l.dateTime(rep.Generated), "", 0, "L", false, 0, "")
		f.CellFormat(contentW/2, 4, fmt.Sprintf("%s %d / {nb}", l.t("page"), f.PageNo()), "", 0, "R", false, 0, "")
	})

	f.AddPage()
	p.header(rep)
	p.tiles(rep)
	p.summary(rep)
	p.trend(rep)
	p.scoreBars(rep)

	f.AddPage()
	p.siteBars(rep)
	p.heatMap(rep)

	f.AddPage()
	p.ranking(l.t("ranking_sites"), l.t("site"), rep.Sites)
	p.ranking(l.t("ranking_ops"), l.t("operator"), rep.Ops)
	p.notices(rep)
	p.health(rep)

	if err := f.Error(); err != nil {
		return fmt.Errorf("render pdf: %w", err)
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return fmt.Errorf("render pdf: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

type pdfw struct {
	f *fpdf.Fpdf
	l loc
}

func (p pdfw) font(style string, size float64, c [3]int) {
	p.f.SetFont("dv", style, size)
	p.f.SetTextColor(c[0], c[1], c[2])
}

func (p pdfw) fill(c [3]int) { p.f.SetFillColor(c[0], c[1], c[2]) }
func (p pdfw) draw(c [3]int) { p.f.SetDrawColor(c[0], c[1], c[2]) }

// section writes a heading, starting a new page when less than need
// millimetres remain.
func (p pdfw) section(title string, need float64) {
	if p.f.GetY()+need > pageH-margin-8 {
		p.f.AddPage()
	}
	p.f.Ln(3)
	p.font("B", 12, cText)
	p.f.CellFormat(contentW, 7, title, "", 1, "L", false, 0, "")
	p.draw(cBlue)
	p.f.SetLineWidth(0.4)
	y := p.f.GetY()
	p.f.Line(margin, y, margin+contentW, y)
	p.f.Ln(2)
}

func (p pdfw) scopeLine(rep *Report) string {
	r := rep.Request
	var parts []string
	if r.Org == "" {
		parts = append(parts, p.l.t("all"))
	}
	for _, kv := range [][2]string{{"org", r.Org}, {"site", r.Site}, {"operator", r.Operator}, {"service", r.Service}} {
		if kv[1] != "" {
			parts = append(parts, p.l.t(kv[0])+": "+kv[1])
		}
	}
	return strings.Join(parts, " · ")
}

func (p pdfw) header(rep *Report) {
	f, l := p.f, p.l
	p.fill(cBlue)
	f.Rect(0, 0, pageW, 30, "F")
	f.SetXY(margin, 8)
	p.font("B", 17, [3]int{255, 255, 255})
	f.CellFormat(contentW, 8, l.t("title"), "", 1, "L", false, 0, "")
	p.font("", 10.5, [3]int{255, 255, 255})
	f.CellFormat(contentW, 6, l.period(rep.Request.Period), "", 1, "L", false, 0, "")
	f.SetY(34)
	p.font("", 9.5, cText)
	f.CellFormat(contentW, 5, l.t("scope")+": "+p.scopeLine(rep), "", 1, "L", false, 0, "")
	if rep.Now.Before(rep.Request.Period.End) {
		p.font("", 8.5, cGrey)
		f.CellFormat(contentW, 5, l.t("so_far")+" "+l.dateTime(rep.Now), "", 1, "L", false, 0, "")
	}
	f.Ln(2)
}

// tiles are four big figures a manager reads first.
func (p pdfw) tiles(rep *Report) {
	f, l := p.f, p.l
	t, pr := rep.Totals, rep.Prev
	share, okS := t.Share()
	pshare, okP := pr.Share()
	mean, okM := t.Mean()
	part, okA := t.Participation()
	type tile struct {
		label, value, note string
		good               int // 1 good, -1 bad, 0 neutral
	}
	shareNote := "–"
	good := 0
	if okS && okP {
		shareNote = l.delta(share, pshare, true) + " " + l.t("vs_prev")
		good = sign(share - pshare)
	}
	partNote, partGood := "–", 0
	if okA {
		if part >= Target {
			partNote, partGood = l.t("meets_target"), 1
		} else {
			partNote, partGood = l.t("below_target"), -1
		}
	}
	tiles := []tile{
		{l.t("satisfied"), l.opt(share, okS, l.pct), shareNote, good},
		{l.t("mean"), l.opt(mean, okM, func(v float64) string { return l.dec(v, 2) }), "", 0},
		{l.t("participation"), l.opt(part, okA, l.pct), partNote, partGood},
		{l.t("votes"), l.num(t.Votes), l.t("activations") + ": " + l.num(t.Activations), 0},
	}
	const gap = 4.0
	w := (contentW - 3*gap) / 4
	y := f.GetY()
	for i, tl := range tiles {
		x := margin + float64(i)*(w+gap)
		p.fill(cLight)
		f.Rect(x, y, w, 26, "F")
		f.SetXY(x+2, y+2)
		p.font("", 7.5, cGrey)
		f.CellFormat(w-4, 4, tl.label, "", 2, "L", false, 0, "")
		f.SetX(x + 2)
		p.font("B", 16, cText)
		f.CellFormat(w-4, 10, tl.value, "", 2, "L", false, 0, "")
		f.SetX(x + 2)
		c := cGrey
		switch tl.good {
		case 1:
			c = cGreen
		case -1:
			c = cRed
		}
		p.font("", 6.8, c)
		f.MultiCell(w-4, 3.2, tl.note, "", "L", false)
	}
	f.SetY(y + 30)
}

func sign(v float64) int {
	switch {
	case v > 1e-12:
		return 1
	case v < -1e-12:
		return -1
	}
	return 0
}

// summary is the table of this period against the previous one.
func (p pdfw) summary(rep *Report) {
	f, l := p.f, p.l
	p.section(l.t("summary"), 60)
	t, pr := rep.Totals, rep.Prev
	pct := func(fn func(Figures) (float64, bool)) (string, string, string) {
		a, okA := fn(t)
		b, okB := fn(pr)
		return l.opt(a, okA, l.pct), l.opt(b, okB, l.pct), l.delta(a, b, okA && okB)
	}
	rows := [][4]string{{l.t("figure"), l.t("this"), l.t("prev"), l.t("change")}}
	rows = append(rows, [4]string{l.t("votes"), l.num(t.Votes), l.num(pr.Votes), signed(l, t.Votes-pr.Votes)})
	a, b, c := pct(Figures.Share)
	rows = append(rows, [4]string{l.t("satisfied"), a, b, c})
	a, b, c = pct(Figures.NegativeShare)
	rows = append(rows, [4]string{l.t("negative"), a, b, c})
	m1, ok1 := t.Mean()
	m2, ok2 := pr.Mean()
	dm := "–"
	if ok1 && ok2 {
		dm = l.dec(m1-m2, 2)
		if m1 >= m2 {
			dm = "+" + dm
		}
	}
	dec2 := func(v float64) string { return l.dec(v, 2) }
	rows = append(rows, [4]string{l.t("mean"), l.opt(m1, ok1, dec2), l.opt(m2, ok2, dec2), dm})
	rows = append(rows, [4]string{l.t("activations"), l.num(t.Activations), l.num(pr.Activations), signed(l, t.Activations-pr.Activations)})
	a, b, c = pct(Figures.Participation)
	rows = append(rows, [4]string{l.t("participation") + " (" + l.t("target") + " 70%)", a, b, c})
	s1, okS1 := ratio(t.ServiceSum, t.Votes)
	s2, okS2 := ratio(pr.ServiceSum, pr.Votes)
	mins := func(v float64) string { return l.dec(v/60, 1) + " " + l.t("min") }
	rows = append(rows, [4]string{l.t("service_mean"), l.opt(s1, okS1, mins), l.opt(s2, okS2, mins), ""})
	widths := []float64{contentW * 0.43, contentW * 0.19, contentW * 0.19, contentW * 0.19}
	for i, r := range rows {
		style := ""
		if i == 0 {
			style = "B"
			p.fill(cLight)
		}
		p.font(style, 8.5, cText)
		for j, cell := range r {
			align := "R"
			if j == 0 {
				align = "L"
			}
			f.CellFormat(widths[j], 5.6, cell, "B", 0, align, i == 0, 0, "")
		}
		f.Ln(-1)
	}
	if t.Votes == 0 {
		f.Ln(2)
		p.font("B", 9, cRed)
		f.CellFormat(contentW, 5, l.t("no_data"), "", 1, "L", false, 0, "")
	}
}

func signed(l loc, d int64) string {
	if d > 0 {
		return "+" + l.num(d)
	}
	return l.num(d)
}

// trend draws the satisfied share per day as a line over a bar of votes.
func (p pdfw) trend(rep *Report) {
	f, l := p.f, p.l
	p.section(l.t("trend"), 75)
	x0, y0 := margin+12, f.GetY()+2
	w, h := contentW-14, 55.0
	p.axes(x0, y0, w, h, []string{"0%", "25%", "50%", "75%", "100%"})
	days := rep.Daily
	if len(days) == 0 {
		return
	}
	step := w / float64(len(days))
	var maxVotes int64
	for _, d := range days {
		maxVotes = max(maxVotes, d.Votes)
	}
	// Votes as pale bars: how much each day's share rests on.
	p.fill([3]int{210, 224, 240})
	for i, d := range days {
		if maxVotes > 0 && d.Votes > 0 {
			bh := h * 0.35 * float64(d.Votes) / float64(maxVotes)
			f.Rect(x0+float64(i)*step+step*0.15, y0+h-bh, step*0.7, bh, "F")
		}
	}
	// Target line of the keypad's participation is not a share of
	// satisfied; draw the share line only.
	p.draw(cBlue)
	f.SetLineWidth(0.6)
	var prev *fpdf.PointType
	for i, d := range days {
		s, ok := d.Share()
		if !ok {
			prev = nil
			continue
		}
		pt := fpdf.PointType{X: x0 + (float64(i)+0.5)*step, Y: y0 + h - h*s}
		if prev != nil {
			f.Line(prev.X, prev.Y, pt.X, pt.Y)
		}
		p.fill(cBlue)
		f.Circle(pt.X, pt.Y, 0.7, "F")
		prev = &pt
	}
	// Day labels, thinned to fit.
	p.font("", 6.5, cGrey)
	every := int(math.Ceil(float64(len(days)) / 14))
	for i, d := range days {
		if i%every != 0 {
			continue
		}
		f.SetXY(x0+float64(i)*step+step/2-8, y0+h+1)
		f.CellFormat(16, 3.5, l.short(d.Day), "", 0, "C", false, 0, "")
	}
	f.SetXY(x0, y0+h+5)
	p.font("", 6.5, cGrey)
	f.CellFormat(w, 3.5, "— "+l.t("satisfied")+" %    ▮ "+l.t("votes"), "", 1, "L", false, 0, "")
}

// axes draws a frame with horizontal grid lines and y labels, top to
// bottom reversed (labels[0] at the bottom).
func (p pdfw) axes(x, y, w, h float64, labels []string) {
	f := p.f
	p.draw([3]int{210, 210, 210})
	f.SetLineWidth(0.2)
	p.font("", 6.5, cGrey)
	for i, lab := range labels {
		gy := y + h - h*float64(i)/float64(len(labels)-1)
		f.Line(x, gy, x+w, gy)
		f.SetXY(x-12, gy-1.7)
		f.CellFormat(11, 3.4, lab, "", 0, "R", false, 0, "")
	}
}

// siteBars draws the satisfied share per site (or per operator when the
// report is about one site), best first.
func (p pdfw) siteBars(rep *Report) {
	f, l := p.f, p.l
	rows, title := rep.Sites, l.t("by_site")
	if rep.Request.Site != "" || len(rows) <= 1 {
		rows, title = rep.Ops, l.t("ranking_ops")
	}
	p.section(title, 40)
	if len(rows) > MaxChartRows {
		rows = rows[:MaxChartRows]
	}
	labelW, barW := 45.0, contentW-45-22
	overall, hasOverall := rep.Totals.Share()
	for _, r := range rows {
		s, ok := r.Share()
		p.font("", 7.5, cText)
		f.CellFormat(labelW, 5, fit(f, r.Name, labelW-1), "", 0, "L", false, 0, "")
		x, y := f.GetX(), f.GetY()
		p.fill(cLight)
		f.Rect(x, y+0.8, barW, 3.4, "F")
		if ok {
			p.fill(cBlue)
			f.Rect(x, y+0.8, barW*s, 3.4, "F")
		}
		if ok && hasOverall {
			// The overall share as a tick, to read above or below it.
			p.draw(cText)
			f.SetLineWidth(0.4)
			f.Line(x+barW*overall, y, x+barW*overall, y+5)
		}
		f.SetX(x + barW + 1)
		f.CellFormat(21, 5, l.opt(s, ok, l.pct)+" ("+l.num(r.Votes)+")", "", 1, "R", false, 0, "")
	}
	if hasOverall {
		p.font("", 6.5, cGrey)
		f.CellFormat(contentW, 4, "| "+l.t("overall")+": "+l.pct(overall)+" · (n) "+strings.ToLower(l.t("votes")), "", 1, "L", false, 0, "")
	}
}

// fit cuts s to fit width w.
func fit(f *fpdf.Fpdf, s string, w float64) string {
	if f.GetStringWidth(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && f.GetStringWidth(string(r)+"…") > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// heatMap draws votes by weekday and hour, darker for more votes; the
// figure in each cell is its satisfied share.
func (p pdfw) heatMap(rep *Report) {
	f, l := p.f, p.l
	p.section(l.t("heat"), 60)
	var maxV int64
	for _, day := range rep.HourMap {
		for _, c := range day {
			maxV = max(maxV, c.Votes)
		}
	}
	labelW := 10.0
	cw, ch := (contentW-labelW)/24, 8.0
	x0, y0 := margin+labelW, f.GetY()
	p.font("", 6, cGrey)
	for hr := range 24 {
		f.SetXY(x0+float64(hr)*cw, y0)
		f.CellFormat(cw, 3.5, fmt.Sprintf("%02d", hr), "", 0, "C", false, 0, "")
	}
	y0 += 4
	for wd, day := range rep.HourMap {
		f.SetXY(margin, y0+float64(wd)*ch)
		p.font("", 7, cText)
		f.CellFormat(labelW, ch, weekdays[l.lang][wd], "", 0, "L", false, 0, "")
		for hr, c := range day {
			x, y := x0+float64(hr)*cw, y0+float64(wd)*ch
			v := 0.0
			if maxV > 0 {
				v = float64(c.Votes) / float64(maxV)
			}
			// From near white to the figure blue.
			p.fill([3]int{lerp(246, cBlue[0], v), lerp(248, cBlue[1], v), lerp(251, cBlue[2], v)})
			f.Rect(x+0.15, y+0.15, cw-0.3, ch-0.3, "F")
			if c.Votes > 0 {
				txt := [3]int{40, 40, 40}
				if v > 0.55 {
					txt = [3]int{255, 255, 255}
				}
				p.font("", 5.5, txt)
				f.SetXY(x, y)
				f.CellFormat(cw, ch, l.dec(100*float64(c.Satisfied)/float64(c.Votes), 0), "", 0, "C", false, 0, "")
			}
		}
	}
	f.SetY(y0 + 7*ch + 2)
	p.font("", 6.5, cGrey)
	f.MultiCell(contentW, 3.2, l.t("heat_note"), "", "L", false)
}

func lerp(a, b int, t float64) int { return int(math.Round(float64(a) + (float64(b)-float64(a))*t)) }

// scoreBars draws the votes per score.
func (p pdfw) scoreBars(rep *Report) {
	f, l := p.f, p.l
	p.section(l.t("scores"), 45)
	var total, most int64
	for _, n := range rep.Scores[1:] {
		total += n
		most = max(most, n)
	}
	colours := [6][3]int{{}, cRed, {230, 130, 70}, cGrey, {110, 170, 110}, cGreen}
	barW := contentW - 20 - 30
	for s := 5; s >= 1; s-- {
		n := rep.Scores[s]
		p.font("B", 8, cText)
		f.CellFormat(20, 6, fmt.Sprintf("%s %d", l.t("score"), s), "", 0, "L", false, 0, "")
		x, y := f.GetX(), f.GetY()
		if most > 0 {
			p.fill(colours[s])
			f.Rect(x, y+1, barW*float64(n)/float64(most), 4, "F")
		}
		f.SetX(x + barW)
		share, ok := ratio(n, total)
		p.font("", 8, cText)
		f.CellFormat(30, 6, l.num(n)+" · "+l.opt(share, ok, l.pct), "", 1, "R", false, 0, "")
	}
}

// ranking lists rows with their fair rank.
func (p pdfw) ranking(title, nameCol string, rows []Row) {
	f, l := p.f, p.l
	p.section(title, 30)
	if len(rows) == 0 {
		p.font("", 8.5, cGrey)
		f.CellFormat(contentW, 5, l.t("none"), "", 1, "L", false, 0, "")
		return
	}
	cols := []string{l.t("rank"), nameCol, l.t("votes"), l.t("satisfied"), l.t("fair"), l.t("mean_short"), l.t("participation")}
	widths := []float64{12, 44, 20, 24, 26, 26, 28}
	p.font("B", 7.5, cText)
	p.fill(cLight)
	for i, c := range cols {
		f.CellFormat(widths[i], 5.5, fit(f, c, widths[i]-1), "B", 0, "C", true, 0, "")
	}
	f.Ln(-1)
	shown := rows
	if len(shown) > MaxChartRows {
		shown = shown[:MaxChartRows]
	}
	for _, r := range shown {
		s, okS := r.Share()
		m, okM := r.Mean()
		pa, okP := r.Participation()
		rk := "–"
		if r.Rank > 0 {
			rk = fmt.Sprint(r.Rank)
		}
		cells := []string{rk, r.Name, l.num(r.Votes), l.opt(s, okS, l.pct), l.opt(r.Shrunk, okS, l.pct),
			l.opt(m, okM, func(v float64) string { return l.dec(v, 2) }), l.opt(pa, okP, l.pct)}
		p.font("", 7.5, cText)
		for i, c := range cells {
			align := "R"
			switch i {
			case 0:
				align = "C"
			case 1:
				align = "L"
				c = fit(f, c, widths[i]-1)
			}
			f.CellFormat(widths[i], 5, c, "B", 0, align, false, 0, "")
		}
		f.Ln(-1)
	}
	if len(rows) > len(shown) {
		p.font("", 7, cGrey)
		f.CellFormat(contentW, 4.5, fmt.Sprintf("+ %d", len(rows)-len(shown)), "", 1, "L", false, 0, "")
	}
	p.font("", 6.8, cGrey)
	f.MultiCell(contentW, 3.3, l.t("fair_note"), "", "L", false)
}

func (p pdfw) keyValues(rows [][2]string) {
	f := p.f
	for _, r := range rows {
		p.font("", 8.5, cText)
		f.CellFormat(contentW*0.6, 5.5, r[0], "B", 0, "L", false, 0, "")
		p.font("B", 8.5, cText)
		f.CellFormat(contentW*0.4, 5.5, r[1], "B", 1, "R", false, 0, "")
	}
}

func (p pdfw) notices(rep *Report) {
	l, n := p.l, rep.Notices
	p.section(l.t("notices"), 30)
	acked := l.num(int64(n.Acknowledged))
	if share, ok := ratio(int64(n.Acknowledged), int64(n.Count)); ok {
		acked += " (" + l.pct(share) + ")"
	}
	rows := [][2]string{{l.t("notices_n"), l.num(int64(n.Count))}, {l.t("acked"), acked}}
	if n.Acknowledged > 0 {
		rows = append(rows, [2]string{l.t("ack_median"), l.dur(n.MedianAck)}, [2]string{l.t("ack_max"), l.dur(n.MaxAck)})
	}
	if n.Truncated {
		rows = append(rows, [2]string{"", l.t("truncated")})
	}
	p.keyValues(rows)
}

func (p pdfw) health(rep *Report) {
	l, h := p.l, rep.Health
	p.section(l.t("health"), 30)
	avail := "–"
	if h.Devices > 0 {
		avail = l.pct(h.Availability)
	}
	p.keyValues([][2]string{
		{l.t("devices"), l.num(int64(h.Devices))},
		{l.t("availability"), avail},
		{l.t("findings"), l.num(int64(h.OpenFindings))},
		{l.t("reminders"), l.num(int64(h.RemindersDue))},
	})
}
