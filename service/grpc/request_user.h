#ifndef TOKENBROKER_SERVICE_GRPC_REQUEST_USER_H_
#define TOKENBROKER_SERVICE_GRPC_REQUEST_USER_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/cache/token_request.h"
#include "service/grpc/request_context.h"
#include "service/users/user_grants.h"

namespace tokenbroker {

// The `user` field of a token or Call request, after the app was authorized
// (AuthorizeTokenRequest / AuthorizeCallRequest): for a user app, resolves
// it to one connected user (UserGrants::Resolve: a user id or username, or
// empty for an app with one connected user), checks that the caller may act
// for that user (AuthorizeUser) and that the user's grant does not need
// re-authorization, then sets `resolved.upstream.user` to the user id and
// the audit record's user. For an app acting on its own behalf `user` must
// be empty.
//
// Errors, each audited through `rpc.Deny()`: INVALID_ARGUMENT (a malformed
// user, a user for an app without users, an empty user for an app with
// several), PERMISSION_DENIED (the caller may not act for that user; also
// for a user that has not connected unless the caller may act for every
// user or names exactly that one, so that nothing is revealed about users
// the caller may not use), FAILED_PRECONDITION (the user has not connected,
// or must connect again: the message says how).
absl::Status ResolveRequestUser(RequestContext& rpc, const UserGrants* grants,
                                absl::string_view user,
                                ResolvedTokenRequest& resolved);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_GRPC_REQUEST_USER_H_
