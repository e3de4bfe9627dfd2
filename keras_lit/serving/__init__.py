"""Clients for keras_lit exports served by TensorFlow Serving."""

from keras_lit.serving.client import GrpcClient
from keras_lit.serving.client import RestClient
from keras_lit.serving.client import ServingError
from keras_lit.serving.client import parse_predict_body
from keras_lit.serving.client import parse_predict_response
from keras_lit.serving.client import predict_request_body
