package influxdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrQuery is returned when InfluxDB answers a query with an error (HTTP or
// statement level), as opposed to the request failing in transit.
var ErrQuery = errors.New("influxql query failed")

// maxResponse bounds one query response: Semko's reads group by a handful
// of tags, so even a national fleet answers in well under this.
const maxResponse = 64 << 20

// query POSTs q to /query with epoch=ns: 1.x refuses statements that
// change data over GET, and POST is also what our Grafana datasource uses
// (httpMode: POST). It returns the series of every statement, in order; a
// statement's error fails the whole call.
func query(ctx context.Context, httpc *http.Client, baseURL, token, db, q string) ([]Series, error) {
	form := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		strings.TrimRight(baseURL, "/")+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("query %.200q: %w", q, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		// 2.x and 3.x take an API token; 1.8 takes "user:password" the same way.
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %.200q: %w", q, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("query %.200q: read response: %w", q, err)
	}
	if len(raw) > maxResponse {
		return nil, fmt.Errorf("query %.200q: %w: response larger than %d bytes", q, ErrQuery, maxResponse)
	}
	out, err := DecodeResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("query %.200q: HTTP %s: %w", q, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query %.200q: %w: HTTP %s", q, ErrQuery, resp.Status)
	}
	return out, nil
}

// DecodeResponse parses the JSON body of /query: the series of every
// statement, in order. Any error reported in the body fails the whole call.
func DecodeResponse(raw []byte) ([]Series, error) {
	var body struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("%w: undecodable response %.200q", ErrQuery, raw)
	}
	if body.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrQuery, body.Error)
	}
	var out []Series
	for i, r := range body.Results {
		if r.Error != "" {
			return nil, fmt.Errorf("%w: statement %d: %s", ErrQuery, i, r.Error)
		}
		out = append(out, r.Series...)
	}
	return out, nil
}

// Series is one series of an InfluxQL result. Numbers in Values are
// json.Number; with epoch=ns the "time" column holds nanoseconds.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
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

// Number returns a numeric cell as float64; ok is false when the column or
// row is missing or the cell is null or not a number.
func (s Series) Number(row int, col string) (v float64, ok bool) {
	f, err := s.Float(row, col)
	return f, err == nil
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
