package embed

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kljensen/snowball/english"

	"github.com/codingbrain/codingbrain/internal/retrieval/lexical"
)

// Builtin is the offline embedder: feature hashing of normalized text into
// a fixed number of dimensions. It needs no model and no network, is
// deterministic (the same text gives the same vector in every process and
// release of the same Model name), and costs microseconds per memory.
//
// The text is folded (Unicode NFKD without combining marks, lower case)
// and cut into words at anything that is not a letter or digit.
// Identifiers are split too — camelCase, PascalCase and acronyms
// (HTTPServer), snake_case, kebab-case, dotted and slashed paths — and the
// joined parts are added as one more word, so getUserByID, get_user_by_id
// and "get user by id" share most of their features. English stop words
// are dropped and words are stemmed (Snowball English). Each text becomes a
// bag of features, hashed into the vector with a sign taken from the hash
// (signed hashing: collisions cancel out on average instead of adding up):
//
//   - each word's stem, weighted 1 + ln(tf) (sublinear term frequency);
//   - the character n-grams (3 to 5) of each word between boundary marks,
//     scaled so that a word's n-grams together weigh 0.6 of the word, for
//     sub-word similarity (postgres ~ postgresql, typos), where the
//     lexical index, which matches whole stems, finds nothing;
//   - optionally (not in the default) word bigrams, pairs of neighbouring
//     stems, which measured worse.
//
// The vector is L2-normalized; a text without any word (empty, only
// punctuation) gives the zero vector, similar to nothing.
//
// Similar vectors mean shared words, stems and word pieces, not shared
// meaning: synonyms with nothing in common ("car", "automobile") stay
// apart. That is what a model behind the HTTP embedder is for.
type Builtin struct {
	f     features
	model string
	pool  sync.Pool // *scratch
	stems *stemCache
}

var _ Embedder = (*Builtin)(nil)

// features are the knobs of the builtin embedder. The defaults were chosen
// by measurement (see builtin_eval_test.go); a variant has another Model
// name, so vectors of different variants are never mixed.
type features struct {
	Dim                int
	Split              bool    // split identifiers and add their compound
	Stem               bool    // Snowball English stemming
	Stop               bool    // drop English stop words
	NGramMin, NGramMax int     // character n-grams of words; 0 for none
	NGramWeight        float32 // what a word's n-grams weigh together
	Bigrams            bool
	BigramWeight       float32
	Sublinear          bool // 1 + ln(tf) instead of tf
	Signed             bool // signed hashing
}

// builtinVersion changes whenever the features of a text change for the
// same parameters (tokenizer, stemmer, stop words, hash), so that stored
// vectors are recomputed (the Model name changes).
const builtinVersion = "v1"

// DefaultBuiltinDim is the dimension of the default builtin embedder.
const DefaultBuiltinDim = 384

var defaultFeatures = features{
	Dim: DefaultBuiltinDim, Split: true, Stem: true, Stop: true,
	NGramMin: 3, NGramMax: 5, NGramWeight: 0.6,
	Sublinear: true, Signed: true,
}

// NewBuiltin returns the default builtin embedder, model "builtin-v1-d384".
func NewBuiltin() *Builtin { return newBuiltin(defaultFeatures) }

func newBuiltin(f features) *Builtin {
	b := &Builtin{f: f, model: f.modelName(), stems: newStemCache()}
	b.pool.New = func() any { return &scratch{} }
	return b
}

// modelName is "builtin-v1-d<dim>" for the default features and adds a
// code of the features where they differ.
func (f features) modelName() string {
	name := fmt.Sprintf("builtin-%s-d%d", builtinVersion, f.Dim)
	d := defaultFeatures
	d.Dim = f.Dim
	if f == d {
		return name
	}
	flag := func(b bool, c string) string {
		if b {
			return c
		}
		return ""
	}
	code := flag(f.Split, "i") + flag(f.Stem, "s") + flag(f.Stop, "x") + flag(f.Sublinear, "l") + flag(f.Signed, "h")
	if f.NGramMax > 0 {
		code += fmt.Sprintf("n%d%d", f.NGramMin, f.NGramMax)
	}
	if f.Bigrams {
		code += "b"
	}
	return fmt.Sprintf("%s-%s-w%g-%g", name, code, f.NGramWeight, f.BigramWeight)
}

// Model names the embedder, its version and dimension, e.g.
// "builtin-v1-d384".
func (b *Builtin) Model() string { return b.model }

// Dim is the length of every vector.
func (b *Builtin) Dim() int { return b.f.Dim }

// Embed returns one L2-normalized vector per text. It never fails but for
// a cancelled ctx.
func (b *Builtin) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	flat := make([]float32, len(texts)*b.f.Dim) // one allocation for all vectors
	s := b.pool.Get().(*scratch)
	defer b.pool.Put(s)
	for i, t := range texts {
		if i%64 == 63 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = flat[i*b.f.Dim : (i+1)*b.f.Dim : (i+1)*b.f.Dim]
		b.embed(s, t, out[i])
	}
	return out, nil
}

// scratch is the reusable working memory of one Embed call.
type scratch struct {
	buf  []byte  // the lower-case words of the text, one after another
	toks []token // the words, in text order
	keys []uint64
	gram []byte // a word between boundary marks, for its n-grams
	text []rune // one chunk, for identifier splitting
}

// token is one word of the text.
type token struct {
	start, end int32  // the lower-case surface form in scratch.buf
	stem       uint64 // hash of the stemmed form: the word's feature
	surf       uint64 // hash of the surface form
	compound   bool   // the joined parts of an identifier: no n-grams or bigrams
}

// Feature kinds, mixed into the hashes so that a word, an n-gram and a
// bigram that spell the same never share a feature.
const (
	kindWord   = 0x9e3779b97f4a7c15
	kindGram   = 0xc2b2ae3d27d4eb4f
	kindBigram = 0x165667b19e3779f9
)

// embed writes the vector of text into v (len Dim, overwritten).
func (b *Builtin) embed(s *scratch, text string, v []float32) {
	clear(v)
	if !isASCII(text) {
		text = lexical.Fold(text)
	}
	s.buf, s.toks = s.buf[:0], s.toks[:0]
	b.tokenize(s, text)

	// Words: one feature per distinct stem, weighted by its frequency.
	s.keys = s.keys[:0]
	for _, t := range s.toks {
		s.keys = append(s.keys, t.stem)
	}
	b.addCounted(v, s.keys, 1)

	// Character n-grams, per distinct surface form.
	if b.f.NGramMax > 0 && b.f.NGramWeight > 0 {
		slices.SortFunc(s.toks, func(x, y token) int { return cmpU64(x.surf, y.surf) })
		for i := 0; i < len(s.toks); {
			j := i + 1
			for j < len(s.toks) && s.toks[j].surf == s.toks[i].surf {
				j++
			}
			if t := s.toks[i]; !t.compound {
				b.addGrams(s, v, s.buf[t.start:t.end], b.tf(j-i))
			}
			i = j
		}
		// Back to text order for the bigrams.
		slices.SortFunc(s.toks, func(x, y token) int { return int(x.start - y.start) })
	}

	// Bigrams of neighbouring words (stop words already left out).
	if b.f.Bigrams && b.f.BigramWeight > 0 {
		s.keys = s.keys[:0]
		prev := uint64(0)
		for _, t := range s.toks {
			if t.compound {
				continue
			}
			if prev != 0 {
				s.keys = append(s.keys, mix(prev*31+t.stem, kindBigram))
			}
			prev = t.stem
		}
		b.addCounted(v, s.keys, b.f.BigramWeight)
	}

	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
}

// addCounted adds each distinct key of keys (reordered) with weight w times
// its frequency's weight.
func (b *Builtin) addCounted(v []float32, keys []uint64, w float32) {
	slices.Sort(keys)
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j] == keys[i] {
			j++
		}
		b.add(v, keys[i], w*b.tf(j-i))
		i = j
	}
}

// tf is the weight of a feature that occurs n times.
func (b *Builtin) tf(n int) float32 {
	if !b.f.Sublinear || n == 1 {
		return float32(n)
	}
	return 1 + float32(math.Log(float64(n)))
}

// add adds w to the feature with hash h: its bucket is the hash's low 32
// bits scaled to Dim, its sign the hash's top bit.
func (b *Builtin) add(v []float32, h uint64, w float32) {
	i := (uint64(uint32(h)) * uint64(len(v))) >> 32
	if b.f.Signed && h>>63 == 1 {
		w = -w
	}
	v[i] += w
}

// maxGramWord bounds the words whose n-grams are taken: longer ones are
// hashes, keys or encoded data, whose pieces match nothing useful.
const maxGramWord = 32

// addGrams adds the character n-grams of word between boundary marks, all
// together weighing NGramWeight times w (in L2 terms).
func (b *Builtin) addGrams(s *scratch, v []float32, word []byte, w float32) {
	if len(word) > maxGramWord || allDigits(word) {
		return
	}
	s.gram = append(append(append(s.gram[:0], '<'), word...), '>')
	g := s.gram
	lo, hi := b.f.NGramMin, b.f.NGramMax
	count := 0
	for n := lo; n <= hi; n++ {
		count += max(len(g)-n+1, 0)
	}
	if count == 0 {
		return
	}
	gw := b.f.NGramWeight * w / float32(math.Sqrt(float64(count)))
	for n := lo; n <= hi; n++ {
		for i := 0; i+n <= len(g); i++ {
			b.add(v, hashBytes(kindGram, g[i:i+n]), gw)
		}
	}
}

// Character classes of the tokenizer.
const (
	classSep  = iota // ends a chunk
	classJoin        // joins the parts of an identifier: _ - . / :
	classWord        // letter or digit
)

func class(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
			return classWord
		case r == '_' || r == '-' || r == '.' || r == '/' || r == ':':
			return classJoin
		}
		return classSep
	case unicode.IsLetter(r) || unicode.IsDigit(r):
		return classWord
	}
	return classSep
}

// tokenize appends the words of text to s.toks. A chunk is a run of
// letters, digits and joiners; its parts are split at joiners and, with
// Split, at case changes. Without Split, joiners separate words like any
// punctuation and case changes do not.
func (b *Builtin) tokenize(s *scratch, text string) {
	s.text = s.text[:0]
	flush := func() {
		if len(s.text) > 0 {
			b.chunk(s, s.text)
			s.text = s.text[:0]
		}
	}
	for _, r := range text {
		switch class(r) {
		case classWord:
			s.text = append(s.text, r)
		case classJoin:
			if b.f.Split {
				s.text = append(s.text, r)
			} else {
				flush()
			}
		default:
			flush()
		}
	}
	flush()
}

// chunk adds the parts of one chunk and, when it has several, their
// compound.
func (b *Builtin) chunk(s *scratch, c []rune) {
	parts := 0
	compoundStart := int32(len(s.buf))
	start := -1
	emit := func(end int) {
		if start < 0 {
			return
		}
		b.word(s, c[start:end])
		parts++
		start = -1
	}
	for i, r := range c {
		if class(r) == classJoin {
			emit(i)
			continue
		}
		if start >= 0 && b.f.Split && i > 0 {
			prev := c[i-1]
			upper := unicode.IsUpper(r)
			// fooBar | FOOBar: a capital after a small letter, or the
			// last capital of a run followed by a small letter.
			if upper && unicode.IsLower(prev) ||
				upper && unicode.IsUpper(prev) && i+1 < len(c) && unicode.IsLower(c[i+1]) {
				emit(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	emit(len(c))
	if parts > 1 && b.f.Split {
		// The compound: every part's lower-case form (stop words
		// included), joined — which is what buf holds from compoundStart.
		end := int32(len(s.buf))
		lw := s.buf[compoundStart:end]
		s.toks = append(s.toks, token{start: compoundStart, end: end, stem: b.stemHash(lw),
			surf: hashBytes(kindGram, lw), compound: true})
	}
}

// word adds one word (a part of a chunk) unless it is too short or a stop
// word. Its lower-case form is appended to buf either way, for the
// compound.
func (b *Builtin) word(s *scratch, w []rune) {
	start := int32(len(s.buf))
	for _, r := range w {
		s.buf = utf8.AppendRune(s.buf, unicode.ToLower(r))
	}
	end := int32(len(s.buf))
	lw := s.buf[start:end]
	if len(w) < 2 || b.f.Stop && english.IsStopWord(string(lw)) { // string(lw) does not allocate here
		return
	}
	s.toks = append(s.toks, token{start: start, end: end, stem: b.stemHash(lw), surf: hashBytes(kindGram, lw)})
}

// stemHash is the feature hash of the word's stem (of the word itself
// without Stem).
func (b *Builtin) stemHash(w []byte) uint64 {
	if !b.f.Stem {
		return hashBytes(kindWord, w)
	}
	return b.stems.hash(w)
}

// stemCache remembers the hashes of stems by word: stemming allocates and
// costs about a microsecond, and a team's vocabulary is small. Past
// maxStems words it stops remembering new ones.
type stemCache struct {
	mu sync.RWMutex
	m  map[string]uint64
}

const maxStems = 1 << 16

func newStemCache() *stemCache { return &stemCache{m: make(map[string]uint64, 1024)} }

func (c *stemCache) hash(w []byte) uint64 {
	c.mu.RLock()
	h, ok := c.m[string(w)]
	c.mu.RUnlock()
	if ok {
		return h
	}
	h = hashString(kindWord, english.Stem(string(w), true))
	c.mu.Lock()
	if len(c.m) < maxStems {
		c.m[string(w)] = h
	}
	c.mu.Unlock()
	return h
}

// hashBytes is 64-bit FNV-1a of b, started from seed and finished with a
// murmur3 mix so that every bit (the sign bit too) depends on every byte.
func hashBytes(seed uint64, b []byte) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix(h, 0)
}

func hashString(seed uint64, s string) uint64 {
	h := uint64(14695981039346656037) ^ seed
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h, 0)
}

// mix is murmur3's 64-bit finalizer of h ^ seed.
func mix(h, seed uint64) uint64 {
	h ^= seed
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
