// Package faults holds the fault tests behind Semko's delivery guarantees:
// each drives simulated keypads through real edge agents, the real backend
// (as a process it can SIGKILL) and a real InfluxDB, injects one fault
// mid-stream and checks that InfluxDB holds exactly what was pressed, by
// device and by score, with no duplicates. See README.md for the list.
//
// The package has no code of its own beyond this comment; everything lives
// in its tests.
package faults
