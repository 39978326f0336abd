package xlang

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Built once by TestMain.
var (
	ballotdBin string
	langPython = &lang{name: "python"}
	langCpp    = &lang{name: "c++"}
	langJava   = &lang{name: "java"}
	allLangs   = []*lang{langPython, langCpp, langJava}
)

// clientRunTimeout bounds one run of an example client, whatever its --timeout.
const clientRunTimeout = 2 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "xlang:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "ballot-xlang-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "xlang:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	// The builds are independent; on two cores running them side by side halves
	// the wait.
	var (
		wg       sync.WaitGroup
		buildErr error
	)
	wg.Go(func() {
		ballotdBin = filepath.Join(dir, "ballotd")
		cmd := exec.Command("go", "build", "-o", ballotdBin, "./server/cmd/ballotd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./server/cmd/ballotd: %v\n%s", err, out)
		}
	})
	wg.Go(func() { preparePython(langPython, root, filepath.Join(dir, "python")) })
	wg.Go(func() { prepareCpp(langCpp, root, filepath.Join(dir, "cpp")) })
	wg.Go(func() { prepareJava(langJava, root, filepath.Join(dir, "java")) })
	wg.Wait()
	if buildErr != nil {
		fmt.Fprintln(os.Stderr, "xlang:", buildErr)
		return 1
	}
	return m.Run()
}

// lang is one example client and how to run it.
type lang struct {
	name string
	// command is the argv that runs the client, before the client's own arguments.
	command []string
	// skip says why this language cannot run here, naming what to install; "" when
	// it can.
	skip string
	// err is a failed build with its output: a test failure, not a skip.
	err error
}

// need skips the test when l's toolchain is missing and fails it when l did not
// build.
func (l *lang) need(t testing.TB) {
	t.Helper()
	if l.skip != "" {
		t.Skipf("%s client skipped: %s", l.name, l.skip)
	}
	if l.err != nil {
		t.Fatalf("%s client did not build: %v", l.name, l.err)
	}
}

// result is what one run of an example client did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// run runs the client with args, stdin as its standard input, and returns what it
// printed and its exit status. A client that cannot be started or runs past
// clientRunTimeout fails the test.
func (l *lang) run(t testing.TB, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientRunTimeout)
	defer cancel()
	argv := append(append([]string{}, l.command...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s client %q ran longer than %s; stderr:\n%s", l.name, args, clientRunTimeout, res.stderr)
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s client %q: %v", l.name, args, err)
	}
	return res
}

// toolSkip returns why one of the programs, given as {program, Debian package}
// pairs, cannot be found on the PATH; "" when all can.
func toolSkip(tools ...[2]string) string {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return fmt.Sprintf("%s is not on the PATH (Debian: install %s)", tool[0], tool[1])
		}
	}
	return ""
}

var (
	needThrift = [2]string{"thrift", "thrift-compiler"}
	needMake   = [2]string{"make", "make"}
)

// firstLine returns the first non-empty line of out, for short skip messages.
func firstLine(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if s := strings.TrimSpace(line); s != "" {
			return s
		}
	}
	return ""
}

// preparePython generates the Python stubs into dir. The client runs on Debian's
// /usr/bin/python3: python3-thrift installs the library for that interpreter only.
func preparePython(l *lang, root, dir string) {
	const python = "/usr/bin/python3"
	if l.skip = toolSkip(needThrift); l.skip != "" {
		return
	}
	if _, err := os.Stat(python); err != nil {
		l.skip = python + " is missing (Debian: install python3 and python3-thrift)"
		return
	}
	if out, err := exec.Command(python, "-c", "import thrift").CombinedOutput(); err != nil {
		l.skip = fmt.Sprintf("%s cannot import thrift (Debian: install python3-thrift): %s", python, firstLine(out))
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.err = err
		return
	}
	if out, err := exec.Command("thrift", "--gen", "py", "-out", dir, filepath.Join(root, "idl", "kv.thrift")).CombinedOutput(); err != nil {
		l.err = fmt.Errorf("thrift --gen py: %v\n%s", err, out)
		return
	}
	l.command = []string{python, filepath.Join(root, "examples", "python", "ballot_client.py"), "--stubs", dir}
}

// prepareCpp builds the C++ client with examples/cpp/Makefile into dir.
func prepareCpp(l *lang, root, dir string) {
	if l.skip = toolSkip([2]string{"g++", "g++"}, needMake, needThrift); l.skip != "" {
		return
	}
	// libthrift-dev's headers include Boost's and OpenSSL's without depending on
	// libboost-dev or libssl-dev, so try them before building.
	probe := exec.Command("g++", "-std=c++17", "-x", "c++", "-fsyntax-only", "-")
	probe.Stdin = strings.NewReader("#include <thrift/protocol/TBinaryProtocol.h>\n#include <thrift/transport/TSocket.h>\n#include <thrift/transport/TSSLSocket.h>\n")
	if out, err := probe.CombinedOutput(); err != nil {
		l.skip = "the Thrift C++ headers do not compile (Debian: install libthrift-dev, libboost-dev and libssl-dev): " + firstLine(out)
		return
	}
	cmd := exec.Command("make", "-C", filepath.Join(root, "examples", "cpp"), "-j2", "BUILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.err = fmt.Errorf("make -C examples/cpp: %v\n%s", err, out)
		return
	}
	l.command = []string{filepath.Join(dir, "ballot_client")}
}

// prepareJava builds the Java client with examples/java/Makefile into dir.
func prepareJava(l *lang, root, dir string) {
	if l.skip = toolSkip([2]string{"javac", "default-jdk-headless"}, [2]string{"java", "default-jdk-headless"}, needMake, needThrift); l.skip != "" {
		return
	}
	for _, jar := range []string{"/usr/share/java/thrift.jar", "/usr/share/java/slf4j-api.jar"} {
		if _, err := os.Stat(jar); err != nil {
			l.skip = jar + " is missing (Debian: install libthrift-java)"
			return
		}
	}
	cmd := exec.Command("make", "-C", filepath.Join(root, "examples", "java"), "BUILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.err = fmt.Errorf("make -C examples/java: %v\n%s", err, out)
		return
	}
	l.command = []string{filepath.Join(dir, "ballot_client")}
}
