package edge

import (
	"hash/fnv"
	"strings"
)

// brokerList splits Config.Broker: one URL, or several comma-separated (the
// nodes of a clustered front door, deploy/cluster).
func brokerList(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// brokerOrder is the order in which one connection attempt tries the
// brokers (paho tries them in turn until one accepts). It starts at a node
// chosen by the device id, so a fleet spreads over the nodes instead of
// all landing on the first, and moves one node on at every attempt, so a
// device whose node died starts with the next one rather than waiting out
// a dead host's connect timeout first each time.
func brokerOrder(device, broker string, turn uint32) []string {
	list := brokerList(broker)
	if len(list) < 2 {
		return list
	}
	h := fnv.New32a()
	h.Write([]byte(device))
	start := int((h.Sum32() + turn) % uint32(len(list)))
	return append(list[start:len(list):len(list)], list[:start]...)
}
