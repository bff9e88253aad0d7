#!/usr/bin/env python3
"""Example: list the environments of an Anypoint organization through the broker.

The service asks the token broker for the connected app's access token over
gRPC (it never holds a client secret), then calls
  GET {anypoint}/accounts/api/organizations/{org}/environments
with urllib. Once the broker implements TokenBroker.Call, the request can go
through the broker instead (stub.Call), and the token never reaches this
process.

Needs the generated stubs on PYTHONPATH (build/client/python) and Debian's
python3-grpcio and python3-protobuf.

Usage:
  list_environments.py --broker HOST:PORT --app APP --anypoint URL --org ORG
                       [--bearer-file FILE] [--ca FILE]
Without --ca the channel is plaintext (development brokers only).
Prints "NAME<TAB>TYPE<TAB>ID" per environment. Exit codes: 0 ok, 1 error.
"""

import argparse
import json
import sys
import urllib.request

import grpc

from anypoint.tokenbroker.v1 import token_broker_pb2
from anypoint.tokenbroker.v1 import token_broker_pb2_grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--anypoint", required=True)
    parser.add_argument("--org", required=True)
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

    with channel:
        stub = token_broker_pb2_grpc.TokenBrokerStub(channel)
        try:
            token = stub.GetToken(
                token_broker_pb2.GetTokenRequest(app=args.app,
                                                 scopes=["view:environment"]),
                timeout=10, metadata=metadata)
        except grpc.RpcError as e:
            print("list_environments: token: %s: %s" % (e.code().name, e.details()),
                  file=sys.stderr)
            return 1

    request = urllib.request.Request(
        "%s/accounts/api/organizations/%s/environments" % (args.anypoint, args.org),
        headers={"Authorization": "Bearer " + token.access_token,
                 "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            environments = json.load(response)
    except urllib.error.HTTPError as e:
        print("list_environments: HTTP %d: %s" % (e.code, e.read().decode(errors="replace")),
              file=sys.stderr)
        return 1
    for env in environments["data"]:
        print("%s\t%s\t%s" % (env.get("name", ""), env.get("type", ""), env.get("id", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
