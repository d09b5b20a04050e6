module zerosys/deploy/lab

go 1.26.0
