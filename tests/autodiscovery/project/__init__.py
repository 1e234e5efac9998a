"""A project whose model subscriptions live where users put them: one in an app's
``subscriptions`` module (autodiscovered), one in a schema that only the URLconf imports
(which the system check warns about). Run in a process of its own by the tests."""
