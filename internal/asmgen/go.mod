module github.com/dsv3go/dsv3/internal/asmgen

go 1.24
