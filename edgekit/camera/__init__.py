"""Frames for the Predictor: conversion and checks, capture from videos and cameras, drawing.

``frames`` is numpy only; capture, drawing and video writing import OpenCV when they run
(``pip install 'edgekit[camera]'``).
"""
