from django.urls import path

from groups_app.views.home import home

app_name = "groups"

urlpatterns = [
    path("", home, name="home"),
    path("", home, name="list"),
]
