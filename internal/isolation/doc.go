// Package isolation holds no code, only tests: the tenant-isolation suite of
// Coding Brain. It proves, against real servers and real stores, that no
// caller ever reads or changes a memory outside its access — not in another
// org, and not inside its own org beyond its grants — through any channel.
//
// What the tests establish:
//
//   - The oracle. Who may see a memory is decided by memory.AccessFor (the
//     caller's org_id; user:<sub> always; org:X ⊇ project:X/* ⊇ team:X/*;
//     grants naming other orgs ignored). TestOracle pins that rule for the
//     fixture against hand-written expectations, so the suites below cannot
//     pass by sharing a bug with it.
//   - REST (TestREST, TestRESTScopes), on SQLite, through a server wired as
//     serve wires it. Every route of httpapi.Routes() has a case, and a
//     route without one fails the suite by name. For every
//     principal of a two-org fixture (org admins, project and team members,
//     a user with only their own entity, a principal with every scope and
//     no grants, a principal whose grants all name another org, and tokens
//     with reduced scopes): requests for memories the caller may not see
//     answer 404 or 403, byte for byte like a memory that does not exist,
//     and leak no id or content; listings, searches, apps and stats hold
//     exactly what the oracle says; writes to invisible memories change
//     nothing (the row and its history length are read back as the owner);
//     a missing scope is 403 insufficient_scope naming the scope. API keys
//     are made, listed and revoked only in the caller's org, never with a
//     grant beyond the maker's, and see exactly what their grants cover;
//     the audit log shows each org its own records and no memory content.
//   - Export and import (in TestREST). An export holds exactly the
//     caller's visible memories, and links only to visible ones, whatever
//     the filters (team, project, access entity, entity, org); an import
//     writes only into entities the caller may write, always into its own
//     org, refuses a whole file for one foreign line, never overwrites a
//     memory the caller may not see (on_conflict fail, skip or remap),
//     never answers with one for equal content, and never links to one.
//   - Privacy and retention (in TestREST). gdpr:* and admin:* act on the
//     whole of the caller's org by design (docs/privacy.md), so the cases
//     prove the org boundary: the subject ada exists in both orgs, luke in
//     both, gus only in globex; exports, checks and erasures of a subject
//     (or of identifiers dressed as the other org's, such as globex/gus)
//     never hold, count or change the other org's data, API keys or MCP
//     sessions; retention is read and set per org, and the purge
//     (TestRetentionPurge) applies one org's policy to that org only.
//   - MCP (TestMCP, TestMCPScopes, TestMCPSessionBinding). The same for
//     every tool of mcpserver.ToolScopes(), through the official SDK client
//     over Streamable HTTP (both protocol eras) with bearer tokens: tool
//     results are errors for invisible memories and never carry a foreign
//     id or foreign content; a session serves only the principal that
//     opened it, on Streamable HTTP and on legacy SSE.
//   - PostgreSQL (TestPostgres, and the postgres halves of TestColdTier
//     and TestRetentionPurge). The cases whose isolation rests on each
//     store's own SQL — export, import, subject rows and erasure,
//     retention, search, get, tiers — run on PostgreSQL too. Ids are
//     unique across orgs on SQLite and per org on PostgreSQL, so an import
//     under the id of another org's memory is remapped on one and stored
//     as the caller's own on the other; on both the other's memory is
//     untouched.
//   - MCP resources and prompt (TestMCPResources, TestMCPPrompt).
//     resources/read of memory://ID answers as get_memory does (not found,
//     worded as for a missing memory, for what the caller may not see);
//     resources/list holds exactly the caller's live memories; the
//     project_context prompt and its completions name only active memories
//     the caller may see; nothing without memories:read.
//   - The cold tier (TestColdTier). With every memory cold, include_cold
//     searches over REST and MCP find exactly what the oracle allows;
//     reading a cold memory one may not see leaves it cold.
//   - The in-process indexes (TestIndexedSearch). With the lexical and
//     vector indexes serve loads, lexical searches over REST and MCP find
//     exactly what the oracle says, and hybrid and vector searches (which
//     always return neighbours) only memories the caller may see.
//   - Notifications (TestMCPUpdatedAcrossOrgs, PostgreSQL). A write to
//     globex's memory held under the id of one of acme's is not announced
//     to acme's subscribers of that id.
//   - Metrics (TestMetrics). /metrics names no memory, content, subject,
//     org or access entity, and needs metrics:read.
//   - Properties (TestProperties). Random principals in three orgs (random
//     scopes, random grants including grants naming other orgs and
//     malformed ones) run random operations — adds with random scope and
//     access entity, gets, updates, state changes, deletes and history of
//     random ids including other tenants', listings with random filters,
//     searches with random words (some with include_cold), apps and
//     stats — through the service,
//     REST and MCP, on SQLite and, when it is installed, PostgreSQL. A model
//     of what exists and who may see it is checked after every operation:
//     zero cross-tenant reads, zero cross-tenant writes, every visible
//     memory returned by get, and the whole store equal to the model at
//     checkpoints. -isolation.seed and -isolation.ops choose the run.
package isolation
