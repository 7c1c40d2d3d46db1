package calendar

import (
	"fmt"
	"maps"
	"slices"
)

// Sites resolves a site's business calendar: the site's own spec, else the
// default; a spec without a time zone takes the site's.
type Sites struct {
	bySite map[string]*Calendar
	def    *Calendar
}

// DefaultHours are the opening hours of a default calendar that names
// none.
var DefaultHours = map[string]string{"mon-fri": "09:00-18:00"}

// NewSites parses the calendars of the sites in zones (site -> IANA time
// zone, from the fleet). own names a site's own spec; a site in own but
// not in zones is an error.
func NewSites(def Spec, own map[string]Spec, zones map[string]string) (*Sites, error) {
	if len(def.Hours) == 0 {
		def.Hours = DefaultHours
	}
	cs := &Sites{bySite: map[string]*Calendar{}}
	var err error
	if cs.def, err = Parse(def); err != nil {
		return nil, fmt.Errorf("alerts calendar default: %w", err)
	}
	for _, site := range slices.Sorted(maps.Keys(zones)) {
		zone := zones[site]
		spec, ok := own[site]
		if !ok {
			spec = def
		}
		if spec.Timezone == "" {
			spec.Timezone = zone
		}
		if cs.bySite[site], err = Parse(spec); err != nil {
			return nil, fmt.Errorf("alerts calendar of site %s: %w", site, err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(own)) {
		if cs.bySite[id] == nil {
			return nil, fmt.Errorf("alerts calendar: site %q is not in the fleet", id)
		}
	}
	return cs, nil
}

// Of is the calendar of site: its own, else the default.
func (cs *Sites) Of(site string) *Calendar {
	if c := cs.bySite[site]; c != nil {
		return c
	}
	return cs.def
}
