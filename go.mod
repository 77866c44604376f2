module github.com/dsv3go/dsv3

go 1.26.0

require (
	github.com/dlclark/regexp2 v1.12.0
	github.com/x448/float16 v0.8.4
	golang.org/x/sys v0.50.0
	gonum.org/v1/gonum v0.17.0
)
