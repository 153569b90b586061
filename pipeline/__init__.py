"""The video and image pipelines: storage -> decode -> stylize -> temporal -> encode -> storage.

Module names follow the data flow: ``probe`` (what a video is), ``plan`` (chunk boundaries),
``decode`` (ffmpeg -> frames), ``stylize`` (frames through a model), ``temporal`` (against
flicker), ``encode`` (frames -> ffmpeg), ``assemble`` (chunks + original audio -> one file);
``chunk_worker`` runs that flow for one chunk, ``scheduler`` runs chunks of many videos on a
pool of Ray actors, and ``video_job`` is the job. Images: ``image_source`` -> ``image_decode``
-> ``stylize`` -> ``image_encode`` -> ``image_sink``, run by ``image_job`` (many, Ray Data) and
``image_file_job`` (one). Storage itself lives in ``core``.
"""
