package access

import (
	"context"
	"testing"
)

func TestScopeAllows(t *testing.T) {
	s := Scope{Orgs: []string{"muni"}, Sites: []string{"bank-centre"}}
	cases := []struct {
		org, site string
		want      bool
	}{
		{"muni", "", true},
		{"muni", "muni-north", true},
		{"bank", "bank-centre", true},
		{"bank", "bank-west", false},
		{"bank", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		if got := s.Allows(c.org, c.site); got != c.want {
			t.Errorf("Allows(%q, %q) = %v, want %v", c.org, c.site, got, c.want)
		}
	}
	if !Everything.Allows("any", "") {
		t.Error("Everything must allow every organisation")
	}
}

func TestPrincipalInContext(t *testing.T) {
	ctx := context.Background()
	if Allows(ctx, "muni", "") {
		t.Fatal("a request without a principal must reach nothing")
	}
	ctx = WithPrincipal(ctx, Principal{Account: "m", Role: Manager, Scope: Scope{Orgs: []string{"muni"}}})
	if !Allows(ctx, "muni", "x") || Allows(ctx, "bank", "y") {
		t.Fatal("the principal's scope is not applied")
	}
	if p, _ := FromContext(ctx); !p.Role.Valid() || Role("boss").Valid() {
		t.Fatal("role validity wrong")
	}
}
