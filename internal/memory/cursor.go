package memory

import (
	"encoding/base64"
	"encoding/json"
	"time"
)

// Cursor is the position after the last row of a page: the value of the sort
// column and the id of that row. Stores encode it with EncodeCursor.
type Cursor struct {
	Sort string    `json:"s"`
	At   time.Time `json:"t"`
	ID   string    `json:"i"`
}

// EncodeCursor makes an opaque page token.
func EncodeCursor(c Cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a token made by EncodeCursor for the given sort order.
func DecodeCursor(s, sort string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.ID == "" {
		return Cursor{}, invalid("cursor", "not a cursor returned by this server")
	}
	if c.Sort != sort {
		return Cursor{}, invalid("cursor", "was made for sort %q, not %q", c.Sort, sort)
	}
	return c, nil
}
