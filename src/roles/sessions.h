/*
 * sessions.h - chat sessions in the coordinator: sessions and their messages
 * in Redis, and answers streamed token by token from an llm role.
 */
#ifndef AB_ROLES_CHAT_H
#define AB_ROLES_CHAT_H

#include "service.h"

struct ab_chat;

/* Starts the relay thread. Returns 0 or a negative code with err. */
int ab_chat_new(struct ab_service *svc, struct ab_chat **out, char *err, size_t errlen);
/* Cancels running answers (they are saved as cancelled) and stops. */
void ab_chat_free(struct ab_chat *c);
/* The chat state of the coordinator (implemented in coordinator.c). */
struct ab_chat *ab_coord_chat(struct ab_service *svc);

void ab_chat_h_create(struct ab_http_req *req);
void ab_chat_h_list(struct ab_http_req *req);
void ab_chat_h_get(struct ab_http_req *req);
void ab_chat_h_update(struct ab_http_req *req);
void ab_chat_h_delete(struct ab_http_req *req);
void ab_chat_h_message(struct ab_http_req *req);
void ab_chat_h_cancel(struct ab_http_req *req);

#endif
