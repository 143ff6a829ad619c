"""Registers a servicer from its service descriptor, with a response serializer that lets a method
return its reply already serialized.

The generated `add_ExplainRecServicer_to_server` fixes each method's serializer to its reply
class's SerializeToString; Recommend returns bytes built in the ranking thread
(server/reply_bytes.py), so the handlers are built here the same way, one per method of the
descriptor, with `serialize` (bytes as they are, a message serialized). The request
deserializers stay the message classes' FromString (the interceptor names the message from it).
"""
from __future__ import annotations

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

HANDLER_FACTORIES = {   # (client streaming, server streaming) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def serialize(reply) -> bytes:
    """A reply's wire bytes: bytes pass through, a message is serialized."""
    return reply if type(reply) is bytes else reply.SerializeToString()


def method_handlers(servicer: object, service: ServiceDescriptor) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per method of `service`, calling the servicer's method of the same name."""
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        factory = HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(getattr(servicer, method.name), request_deserializer=request.FromString,
                                        response_serializer=serialize)
    return handlers


def add_servicer(servicer: object, service: ServiceDescriptor, server: grpc.aio.Server) -> None:
    """As the generated add_*Servicer_to_server does: a generic handler and the registered methods."""
    handlers = method_handlers(servicer, service)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
