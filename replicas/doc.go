// Package replicas reads replicas.txt, the file that lists the members of a Ballot
// cluster: which replicas exist and where each one listens.
//
// The format is one replica per line, three whitespace-separated fields:
//
//	# id  client address     peer address
//	1     127.0.0.1:7001     127.0.0.1:8001
//	2     127.0.0.1:7002     127.0.0.1:8002
//	3     127.0.0.1:7003     127.0.0.1:8003
//
// A '#' starts a comment that runs to the end of the line, wherever it appears.
// Blank lines and comment-only lines are ignored.
//
// The id is a positive decimal integer no larger than 2^63-1 (it travels as a
// Thrift i64). The client address is where the KV service listens, the peer address
// where the Peer service listens; both are host:port with a port from 1 to 65535.
//
// Parse promises that a list it returns is non-empty, in file order, has unique ids,
// and uses every address at most once across all lines (client and peer addresses
// together). Any other input is an error of type *ParseError naming the file and line
// (for example "replicas.txt:3: duplicate id 2: already on line 2"), which wraps one
// of the Err values below so callers can test the cause with errors.Is.
//
// The file bootstraps a cluster and tells a replica where its peers are; it is not
// the configuration in force once the cluster runs, which is replicated state.
package replicas
