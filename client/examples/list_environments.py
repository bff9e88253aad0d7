#!/usr/bin/env python3
"""Example: list the environments of an Anypoint organization through the broker.

The service sends
  GET /accounts/api/organizations/{org}/environments
through the token broker (TokenBroker.Call over gRPC): the broker adds the
connected app's access token and forwards the request to the app's control
plane. The service never holds a client secret or a token, only the answer.
The broker must grant the caller that route on the app (config/demo.yaml does
for the anonymous development caller).

Needs the generated stubs on PYTHONPATH (build/client/python) and Debian's
python3-grpcio and python3-protobuf.

For an app acting on behalf of users, --user names whose token the broker
injects (an Anypoint username or user id; the caller's grant must cover the
user, and the user must have connected: tokenbrokerctl connect APP).

Usage:
  list_environments.py --broker HOST:PORT --app APP --org ORG
                       [--user USER] [--bearer-file FILE] [--ca FILE]
Without --ca the channel is plaintext (development brokers only).
Prints "NAME<TAB>TYPE<TAB>ID" per environment. Exit codes: 0 ok, 1 error.
"""

import argparse
import json
import sys

import grpc

from anypoint.tokenbroker.v1 import token_broker_pb2
from anypoint.tokenbroker.v1 import token_broker_pb2_grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--bearer-file")
    parser.add_argument("--ca")
    args = parser.parse_args()

    if args.ca:
        with open(args.ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.broker, credentials)
    else:
        channel = grpc.insecure_channel(args.broker)
    metadata = []
    if args.bearer_file:
        with open(args.bearer_file) as f:
            metadata.append(("authorization", "Bearer " + f.read().strip()))

    path = "/accounts/api/organizations/%s/environments" % args.org
    request = token_broker_pb2.CallRequest(
        app=args.app,
        method="GET",
        path=path,
        headers=[token_broker_pb2.Header(name="Accept", value="application/json")],
        scopes=["view:environment"],
        user=args.user)
    with channel:
        stub = token_broker_pb2_grpc.TokenBrokerStub(channel)
        try:
            response = stub.Call(request, timeout=30, metadata=metadata)
        except grpc.RpcError as e:
            # The broker's verdict: unknown app, route not granted, Anypoint down...
            print("list_environments: %s: %s" % (e.code().name, e.details()),
                  file=sys.stderr)
            return 1

    # Anypoint's HTTP status is data in the answer, not a gRPC error.
    if response.status != 200:
        print("list_environments: GET %s: HTTP %d: %s"
              % (path, response.status, response.body.decode(errors="replace")),
              file=sys.stderr)
        return 1
    try:
        environments = json.loads(response.body)["data"]
    except (ValueError, KeyError, TypeError):
        print("list_environments: unexpected answer from Anypoint", file=sys.stderr)
        return 1
    for env in environments:
        print("%s\t%s\t%s" % (env.get("name", ""), env.get("type", ""), env.get("id", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
