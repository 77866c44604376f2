// Package asmgen holds dsv3's assembly generators, written with avo
// (github.com/mmcloughlin/avo). It is its own module so that the library
// does not depend on avo; each subdirectory is a generator whose output
// (.s and stub .go files) is committed in the package it serves. Run one
// with, for example:
//
//	cd internal/asmgen && go run ./gemm -out ../gemm/gemm_amd64.s -stubs ../gemm/gemm_stubs_amd64.go
package asmgen
