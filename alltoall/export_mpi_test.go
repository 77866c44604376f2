//go:build mpi

package alltoall

// SetMPIChunk sets the largest byte count of one MPI call, so that the
// tests exercise the chunked paths with small buffers.
var SetMPIChunk = setMPIChunk
