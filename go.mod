module github.com/codingbrain/codingbrain

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/oklog/ulid/v2 v2.1.2
)
