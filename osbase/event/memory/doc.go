// Package memory implements event.Value for state held in the process
// itself, such as a service's status that other services follow.
//
// Set costs the same no matter how many watchers there are and never waits
// for them: it stores the value and wakes whoever is blocked in Get. No
// goroutine runs per watcher, so a watcher that is not reading costs nothing
// but its own small struct.
package memory
