// http_server.go: the Go twin of http_server.c for bench/http.sh, on Go's
// netpoller: a goroutine per connection, blocking-style reads and writes
// that park the goroutine, GOMAXPROCS=1 by default (one core, as coro's
// loop and the bare epoll server have). Answers every complete request
// head in what one read brought with one write, as bench/bare_epoll.c
// does. Not net/http: its parsing would measure something else.
//
// usage: http_server_go [--port N] [--help]
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
)

const reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" +
	"Content-Length: 3\r\n\r\nok\n"

const pipelined = 32

var replies = bytes.Repeat([]byte(reply), pipelined)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if n <= 0 || err != nil {
			return
		}
		have += n
		used, heads := 0, 0
		for {
			i := bytes.Index(buf[used:have], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			used += i + 4
			heads++
		}
		copy(buf, buf[used:have])
		have -= used
		for heads > 0 {
			k := heads
			if k > pipelined {
				k = pipelined
			}
			if _, err := c.Write(replies[:k*len(reply)]); err != nil {
				return
			}
			heads -= k
		}
		if have == len(buf) {
			return
		}
	}
}

func main() {
	port := 8083
	for i := 1; i < len(os.Args); i++ {
		switch {
		case os.Args[i] == "--help":
			fmt.Print("usage: http_server_go [--port N]\n" +
				"Serves HTTP/1.1 on 127.0.0.1:N (default 8083), a goroutine\n" +
				"per connection, answering as bench/http_server does, until\n" +
				"killed. GOMAXPROCS defaults to 1 here.\n")
			return
		case os.Args[i] == "--port" && i+1 < len(os.Args):
			p, err := strconv.Atoi(os.Args[i+1])
			if err != nil || p <= 0 || p > 65535 {
				fmt.Fprintln(os.Stderr, "http_server_go: bad port")
				os.Exit(2)
			}
			port = p
			i++
		default:
			fmt.Fprintln(os.Stderr, "usage: http_server_go [--port N]")
			os.Exit(2)
		}
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_server_go:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
