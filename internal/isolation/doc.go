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
//   - MCP (TestMCP, TestMCPScopes, TestMCPSessionBinding). The same for
//     every tool of mcpserver.ToolScopes(), through the official SDK client
//     over Streamable HTTP (both protocol eras) with bearer tokens: tool
//     results are errors for invisible memories and never carry a foreign
//     id or foreign content; a session serves only the principal that
//     opened it, on Streamable HTTP and on legacy SSE.
//   - Properties (TestProperties). Random principals in three orgs (random
//     scopes, random grants including grants naming other orgs and
//     malformed ones) run random operations — adds with random scope and
//     access entity, gets, updates, state changes, deletes and history of
//     random ids including other tenants', listings with random filters,
//     searches with random words, apps and stats — through the service,
//     REST and MCP, on SQLite and, when it is installed, PostgreSQL. A model
//     of what exists and who may see it is checked after every operation:
//     zero cross-tenant reads, zero cross-tenant writes, every visible
//     memory returned by get, and the whole store equal to the model at
//     checkpoints. -isolation.seed and -isolation.ops choose the run.
package isolation
