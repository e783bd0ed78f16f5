// peers: the Go side of bench/peers.sh. Usage: peers handoff|spawn|timers
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

func handoff() {
	n := 5000000
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	fmt.Printf("handoff %.1f\n", float64(time.Since(t0).Nanoseconds())/float64(2*n))
}

func spawn() {
	n := 1000000
	t0 := time.Now()
	for i := 0; i < n; i++ {
		done := make(chan struct{})
		go func() { close(done) }()
		<-done
	}
	fmt.Printf("spawn %.1f\n", float64(time.Since(t0).Nanoseconds())/float64(n))
}

func timers() {
	n := 1000
	over := make([]float64, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		over[i] = float64(time.Since(t0).Nanoseconds()-1000000) / 1000
	}
	sum := 0.0
	for _, v := range over {
		sum += v
	}
	sort.Float64s(over)
	fmt.Printf("timers %.1f %.1f\n", sum/float64(n), over[n*99/100])
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: peers handoff|spawn|timers")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "handoff":
		handoff()
	case "spawn":
		spawn()
	case "timers":
		timers()
	default:
		fmt.Fprintln(os.Stderr, "usage: peers handoff|spawn|timers")
		os.Exit(2)
	}
}
