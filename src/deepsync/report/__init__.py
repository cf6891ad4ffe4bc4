"""`make report`: one offline HTML page of pictures of the data, features, runs and submissions.

`page` gathers them into ``reports/<run>/index.html``; `figures` draws each picture.
"""
