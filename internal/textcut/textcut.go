// Package textcut bounds strings that come from outside (device errors,
// client IDs, topics, notice texts) before they are logged, stored or
// sent, without ever cutting inside a UTF-8 character: a cut character
// would make the JSON or the log line invalid UTF-8.
package textcut

import "unicode/utf8"

// Ellipsis marks a string Trunc cut.
const Ellipsis = "…"

// Cut returns the longest prefix of s of at most n bytes that does not end
// inside a UTF-8 character.
func Cut(s string, n int) string {
	if n >= len(s) {
		return s
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Trunc returns s if it has at most n bytes, else Cut(s, n) followed by
// Ellipsis.
func Trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Cut(s, n) + Ellipsis
}
