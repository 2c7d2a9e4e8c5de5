package event_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"metropolis.dev/osbase/event"
	"metropolis.dev/osbase/event/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 30 * time.Second

// receive waits for the next value on c.
func receive[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("no value received after %v", testTimeout)
		panic("unreachable")
	}
}

func TestPipeForwardsValues(t *testing.T) {
	var v memory.Value[int]
	v.Set(1)
	c := make(chan int)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- event.Pipe(&v, c)(ctx) }()

	if got := receive(t, c); got != 1 {
		t.Fatalf("received %d, want the value set before piping, 1", got)
	}
	for want := 2; want <= 5; want++ {
		v.Set(want)
		if got := receive(t, c); got != want {
			t.Fatalf("received %d, want %d", got, want)
		}
	}

	cancel()
	if err := receive(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pipe returned %v, want context.Canceled", err)
	}
}

func TestPipeStopsWhileBlockedOnSend(t *testing.T) {
	var v memory.Value[int]
	v.Set(1)
	// Nobody reads c, so the pipe is stuck sending when cancelled.
	c := make(chan int)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- event.Pipe(&v, c)(ctx) }()
	cancel()
	if err := receive(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pipe returned %v, want context.Canceled", err)
	}
}

func TestPipePassesOptions(t *testing.T) {
	var v memory.Value[int]
	v.Set(1)
	c := make(chan int, 1)
	odd := event.Filter(func(i int) bool { return i%2 == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err := event.Pipe(&v, c, odd, event.BacklogOnly[int]())(ctx)
	if !errors.Is(err, event.ErrBacklogDone) {
		t.Fatalf("Pipe with BacklogOnly returned %v, want ErrBacklogDone", err)
	}
	if got := receive(t, c); got != 1 {
		t.Fatalf("received %d, want 1", got)
	}

	errc := make(chan error)
	go func() { errc <- event.Pipe(&v, c, odd)(ctx) }()
	if got := receive(t, c); got != 1 {
		t.Fatalf("received %d, want the current value 1", got)
	}
	v.Set(2)
	v.Set(3)
	if got := receive(t, c); got != 3 {
		t.Fatalf("received %d, want the odd value 3", got)
	}
	cancel()
	if err := receive(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pipe returned %v, want context.Canceled", err)
	}
}
