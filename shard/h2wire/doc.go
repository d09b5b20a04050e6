// Package h2wire is HTTP/2's wire format without allocation: the frame
// header (RFC 9113 §4.1) and HPACK header decoding (RFC 7541) with its
// dynamic table and Huffman code, for a server that decodes requests on
// its hot path. Connection and stream state are the caller's.
package h2wire
