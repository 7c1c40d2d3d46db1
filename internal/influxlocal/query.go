package influxlocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpClient bounds every request even if a caller's ctx has no deadline.
var httpClient = &http.Client{Timeout: time.Minute}

// Series is one series of an InfluxQL result. Numbers in Values are
// json.Number; with epoch=ns the "time" column holds nanoseconds.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs InfluxQL q against the server's database.
func (s *Server) Query(ctx context.Context, q string) ([]Series, error) {
	return Query(ctx, s.URL(), s.db, q)
}

// Query runs InfluxQL q against db on the InfluxDB at baseURL (1.x /query;
// 2.x and 3.x serve the same endpoint) and returns the series of all
// statements, in order. A statement's error fails the whole call.
//
// It always POSTs: 1.x refuses statements that change data over GET, and
// POST is also what our Grafana datasource uses (httpMode: POST).
func Query(ctx context.Context, baseURL, db, q string) ([]Series, error) {
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(baseURL, "/")+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()

	var body struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %q: read response: %w", q, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %s: %.512s", q, resp.Status, raw)
	}
	if body.Error != "" {
		return nil, fmt.Errorf("query %q: HTTP %s: %s", q, resp.Status, body.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query %q: HTTP %s", q, resp.Status)
	}
	var out []Series
	for i, r := range body.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("query %q: statement %d: %s", q, i, r.Error)
		}
		out = append(out, r.Series...)
	}
	return out, nil
}

// Col returns the index of column name, or -1.
func (s Series) Col(name string) int {
	for i, c := range s.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

func (s Series) value(row int, col string) (any, error) {
	c := s.Col(col)
	if c < 0 {
		return nil, fmt.Errorf("series %s: no column %q", s.Name, col)
	}
	if row < 0 || row >= len(s.Values) || c >= len(s.Values[row]) {
		return nil, fmt.Errorf("series %s: no row %d", s.Name, row)
	}
	return s.Values[row][c], nil
}

// Int returns an integer cell (fields, counts, and "time" with epoch=ns).
func (s Series) Int(row int, col string) (int64, error) {
	n, err := s.number(row, col)
	if err != nil {
		return 0, err
	}
	return n.Int64()
}

// Float returns a numeric cell as float64.
func (s Series) Float(row int, col string) (float64, error) {
	n, err := s.number(row, col)
	if err != nil {
		return 0, err
	}
	return n.Float64()
}

func (s Series) number(row int, col string) (json.Number, error) {
	v, err := s.value(row, col)
	if err != nil {
		return "", err
	}
	n, ok := v.(json.Number)
	if !ok {
		return "", fmt.Errorf("series %s: %s[%d] is %T, not a number", s.Name, col, row, v)
	}
	return n, nil
}

// Text returns a string cell.
func (s Series) Text(row int, col string) (string, error) {
	v, err := s.value(row, col)
	if err != nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("series %s: %s[%d] is %T, not a string", s.Name, col, row, v)
	}
	return str, nil
}

// Time returns the "time" cell of a row, for results queried with epoch=ns.
func (s Series) Time(row int) (time.Time, error) {
	ns, err := s.Int(row, "time")
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}
