#!/usr/bin/env python3
"""Calls a running broker through the generated Python stubs.

Run by with_broker.sh (TOKENBROKER_ADDR, ANYPOINT_URL), with the generated
package (build/client/python) on PYTHONPATH and Debian's python3-grpcio.
"""

import os
import time
import unittest

import grpc

from anypoint.tokenbroker.v1 import broker_admin_pb2
from anypoint.tokenbroker.v1 import broker_admin_pb2_grpc
from anypoint.tokenbroker.v1 import token_broker_pb2
from anypoint.tokenbroker.v1 import token_broker_pb2_grpc


class PythonClientTest(unittest.TestCase):

    def setUp(self):
        self.channel = grpc.insecure_channel(os.environ["TOKENBROKER_ADDR"])
        self.broker = token_broker_pb2_grpc.TokenBrokerStub(self.channel)
        self.admin = broker_admin_pb2_grpc.BrokerAdminStub(self.channel)

    def tearDown(self):
        self.channel.close()

    def test_get_token(self):
        token = self.broker.GetToken(
            token_broker_pb2.GetTokenRequest(app="design-center"), timeout=20)
        self.assertTrue(token.access_token)
        self.assertEqual(token.token_type, "Bearer")
        self.assertEqual(token.app, "design-center")
        self.assertGreater(token.expires_at.seconds, time.time())
        again = self.broker.GetToken(
            token_broker_pb2.GetTokenRequest(app="design-center"), timeout=20)
        self.assertEqual(again.access_token, token.access_token)

    def test_unknown_app_is_permission_denied(self):
        # An unknown app looks like one the caller has no grant for.
        with self.assertRaises(grpc.RpcError) as raised:
            self.broker.GetToken(
                token_broker_pb2.GetTokenRequest(app="no-such-app"), timeout=20)
        self.assertEqual(raised.exception.code(),
                         grpc.StatusCode.PERMISSION_DENIED)

    def test_watch_sends_the_current_token(self):
        stream = self.broker.WatchToken(
            token_broker_pb2.WatchTokenRequest(app="exchange-reader"))
        first = next(stream)
        stream.cancel()
        self.assertTrue(first.access_token)
        self.assertEqual(first.app, "exchange-reader")

    def test_user_fields_are_generated(self):
        request = token_broker_pb2.GetTokenRequest(app="viewer", user="alice")
        parsed = token_broker_pb2.GetTokenRequest.FromString(
            request.SerializeToString())
        self.assertEqual(parsed.user, "alice")
        self.assertEqual(token_broker_pb2.WatchTokenRequest(user="a").user, "a")
        self.assertEqual(token_broker_pb2.CallRequest(user="a").user, "a")
        token = token_broker_pb2.GetTokenResponse(user_id="u-1", username="a")
        self.assertEqual((token.user_id, token.username), ("u-1", "a"))
        self.assertEqual(broker_admin_pb2.RevokeTokenRequest(user="a").user, "a")
        self.assertEqual(broker_admin_pb2.RefreshTokenRequest(user="a").user, "a")
        grant = broker_admin_pb2.UserGrantInfo(
            username="a",
            state=broker_admin_pb2.USER_GRANT_STATE_NEEDS_REAUTHORIZATION)
        self.assertEqual(broker_admin_pb2.AppInfo(users=[grant]).users[0].username,
                         "a")
        self.assertTrue(hasattr(self.admin, "CreateConnectLink"))

    def test_user_on_an_app_acting_on_its_own_behalf_is_refused(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.broker.GetToken(
                token_broker_pb2.GetTokenRequest(app="design-center",
                                                 user="alice.acme"),
                timeout=20)
        self.assertEqual(raised.exception.code(),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("acts on its own behalf", raised.exception.details())

    def test_list_apps(self):
        apps = self.admin.ListApps(broker_admin_pb2.ListAppsRequest(), timeout=20)
        names = [app.name for app in apps.apps]
        self.assertEqual(names,
                         ["design-center", "env-viewer", "exchange-reader"])
        self.assertEqual(apps.apps[0].grant_type,
                         broker_admin_pb2.GRANT_TYPE_CLIENT_CREDENTIALS)


if __name__ == "__main__":
    unittest.main(verbosity=2)
