"""The video and image pipelines: storage -> decode -> stylize -> temporal -> encode -> storage.

Module names follow the data flow: ``storage`` (read inputs, write outputs), ``probe`` (what a
video is), ``plan`` (chunk boundaries), ``decode`` (ffmpeg -> frames), ``stylize`` (frames through
a model), ``encode`` (frames -> ffmpeg), ``assemble`` (chunks + original audio -> one file), and
``video_job`` (the job on Ray).
"""
